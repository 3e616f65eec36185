package container

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// StartTime returns field 22 of /proc/<pid>/stat, the process's start time in clock ticks
// since boot. Together with the PID it identifies a process across PID reuse.
func StartTime(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("pid %d: %w", pid, os.ErrNotExist)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(b)
}

// parseStartTime reads the start time out of a /proc/<pid>/stat line. The command name in
// field 2 may contain spaces and parentheses, so fields are counted after the last ')'.
func parseStartTime(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	// After ") " come fields 3.. ; start time is field 22, the 20th of those.
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after comm", len(fields))
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// alive reports whether pid is still the process that started at startTime (and not a
// zombie waiting to be reaped).
func alive(pid int, startTime uint64) bool {
	if pid <= 0 || startTime == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st, err := parseStartTime(b)
	if err != nil || st != startTime {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
