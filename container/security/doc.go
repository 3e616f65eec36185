// Package security computes and applies the restrictions of a container's processes the way
// docker does by default: capabilities, user and groups, no_new_privs, a seccomp filter
// built from moby's profile, and the masked and read-only paths of /proc and /sys.
//
// What is decided from the user's flags (Options, Process) is computed on the host, where it
// can be refused before anything exists; what must happen inside the container (resolving
// the user in its /etc/passwd, mounts, dropping privileges) runs in its init, just before
// execve. The exec path hands the same Process to the nsenter constructor, which applies it
// in C.
package security
