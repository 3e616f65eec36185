package container

import (
	"errors"
	"strings"

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
	ErrUnsafeArchive = image.ErrUnsafeArchive
)

// ExitEngine is the exit code of a fockker command that failed itself, docker's 125 (126 and
// 127, a command that cannot be run or was not found, come from the container's init).
const ExitEngine = 125

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}
