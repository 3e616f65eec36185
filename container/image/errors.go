package image

import "errors"

// Sentinel errors; callers test them with errors.Is.
var (
	// ErrUnsafeArchive is an archive entry that would land outside the target directory.
	ErrUnsafeArchive = errors.New("unsafe path in image archive")
	ErrInvalidName   = errors.New("invalid image name")
	ErrNotFound      = errors.New("no such image")
	ErrExists        = errors.New("image already exists")
	ErrInUse         = errors.New("image is in use by a container")
	ErrUnknownFormat = errors.New("unknown image archive format")
	ErrCorrupt       = errors.New("corrupt image archive")
)
