package cgroup

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidName: a parent or container name that is not a safe single
	// path component.
	ErrInvalidName = errors.New("invalid cgroup name")
	// ErrInvalidLimit: a resource limit that is malformed or out of range.
	ErrInvalidLimit = errors.New("invalid resource limit")
	// ErrExist: the cgroup already exists in at least one hierarchy, so
	// another container (or another install sharing the parent) may own it.
	ErrExist = errors.New("cgroup already exists")
	// ErrControllerUnavailable: a requested limit needs a controller that
	// is not mounted (v1) or not available/enabled (v2).
	ErrControllerUnavailable = errors.New("cgroup controller not available")
	// ErrBusy: the cgroup still holds processes after the grace period.
	ErrBusy = errors.New("cgroup still has processes")
)
