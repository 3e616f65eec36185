package main

import (
	"fmt"
	"os"
	"strings"
)

// msgID names one user-facing message.
type msgID int

const (
	msgStarted msgID = iota
	msgStopped
	msgNotRunning
	msgRemoved
	msgNetworkCreated
	msgNetworkRemoved
	msgImageRemoved
	msgImageCommitted
	msgImageImported
	msgImageLoaded
)

// catalog returns a message in English and in the seed's Chinese wording.
func catalog(id msgID) (en, zh string) {
	switch id {
	case msgStarted:
		return "Container %s started", "容器 %s 启动成功"
	case msgStopped:
		return "Container: %s, ID: %s, stopped", "容器: %s, ID: %s, 已进入stopped"
	case msgNotRunning:
		return "Container: %s, ID: %s, is not running", "容器: %s, ID: %s, 未在运行"
	case msgRemoved:
		return "Container: %s, ID: %s, removed", "容器: %s, ID: %s, 已删除"
	case msgNetworkCreated:
		return "Network: %s, created", "网络: %s, 创建成功"
	case msgNetworkRemoved:
		return "Network: %s, removed", "网络: %s, 删除成功"
	case msgImageRemoved:
		return "Image: %s, removed", "镜像: %s, 已删除"
	case msgImageCommitted:
		return "Image: %s, committed from container %s", "镜像: %s, 已从容器 %s 提交"
	case msgImageImported:
		return "Image: %s, imported", "镜像: %s, 导入成功"
	case msgImageLoaded:
		return "Loaded image: %s", "镜像: %s, 加载成功"
	}
	return "%v", "%v"
}

// chinese reports whether the locale asks for Chinese messages: the first of LC_ALL,
// LC_MESSAGES and LANG that is set decides, as in POSIX.
func chinese() bool {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := os.Getenv(k); v != "" {
			return strings.HasPrefix(v, "zh")
		}
	}
	return false
}

// say formats a message in the user's language.
func say(id msgID, args ...any) string {
	en, zh := catalog(id)
	if chinese() {
		return fmt.Sprintf(zh, args...)
	}
	return fmt.Sprintf(en, args...)
}
