package container

import (
	"errors"

	"github.com/FishingRodd/fockker/container/image"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrInvalidName   = errors.New("invalid name")
	ErrInvalidVolume = errors.New("invalid volume")
	ErrInvalidEnv    = errors.New("invalid environment variable")
	ErrInvalidRoot   = errors.New("invalid root directory")
	ErrRelativeRoot  = errors.New("root directory must be an absolute path")
	ErrNameInUse     = errors.New("name already in use")
	ErrNotFound      = errors.New("no such container")
	ErrAmbiguous     = errors.New("ambiguous container reference")
	ErrImageNotFound = errors.New("no such image")
	ErrRunning       = errors.New("container is running")
	ErrNotRunning    = errors.New("container is not running")
	ErrLayerExists   = errors.New("layer directory already exists")
	ErrInternal      = errors.New("internal command")
	ErrUnsafeArchive = image.ErrUnsafeArchive
)
