package security

// MaskedPaths are hidden from a container that is not privileged, as docker does: a file
// gets /dev/null bound over it, a directory an empty read-only tmpfs.
func MaskedPaths() []string {
	return []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// ReadonlyPaths are bound read-only in a container that is not privileged, as docker does.
func ReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}
