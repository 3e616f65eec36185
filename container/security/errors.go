package security

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidCapability: a capability name that is not known.
	ErrInvalidCapability = errors.New("invalid capability")
	// ErrCapabilityNotHeld: a capability fockker itself does not hold, so it cannot give it.
	ErrCapabilityNotHeld = errors.New("capability not held by fockker")
	// ErrInvalidSecurityOpt: a --security-opt that is malformed or not supported.
	ErrInvalidSecurityOpt = errors.New("invalid security option")
	// ErrInvalidUser: a -u value that is malformed.
	ErrInvalidUser = errors.New("invalid user")
	// ErrUnknownUser: a user or group name with no entry in the container's files.
	ErrUnknownUser = errors.New("no matching entries in passwd or group file")
	// ErrInvalidProfile: a seccomp profile that cannot be turned into a filter.
	ErrInvalidProfile = errors.New("invalid seccomp profile")
)
