package main

import (
	"reflect"
	"testing"
)

func TestContainerEnv(t *testing.T) {
	got := containerEnv("box", true, []string{"A=1", "PATH=/x", "A=2", "B="})
	want := []string{"PATH=/x", "HOSTNAME=box", "TERM=xterm", "A=2", "B="}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("containerEnv = %q, want %q", got, want)
	}
	if got := containerEnv("", false, nil); len(got) != 1 {
		t.Fatalf("no hostname, no tty: %q", got)
	}
}

func TestEnvEntry(t *testing.T) {
	t.Setenv("FOCKKER_TEST_FROM_HOST", "v")
	for _, tc := range []struct {
		in, want string
		ok, err  bool
	}{
		{"A=1", "A=1", true, false},
		{"A=", "A=", true, false},
		{"A=b=c", "A=b=c", true, false},
		{"FOCKKER_TEST_FROM_HOST", "FOCKKER_TEST_FROM_HOST=v", true, false},
		{"FOCKKER_TEST_UNSET_XYZ", "", false, false},
		{"=1", "", false, true},
		{"A B=1", "", false, true},
		{"", "", false, true},
	} {
		got, ok, err := envEntry(tc.in)
		if (err != nil) != tc.err || ok != tc.ok || got != tc.want {
			t.Errorf("envEntry(%q) = %q, %v, %v", tc.in, got, ok, err)
		}
	}
}

func TestValidHostname(t *testing.T) {
	for h, ok := range map[string]bool{
		"box": true, "a.b-c": true, "": false, "-a": false, "a-": false, "a..b": false, "a_b": false,
		"x" + string(make([]byte, 64)): false,
	} {
		if validHostname(h) != ok {
			t.Errorf("validHostname(%q) != %v", h, ok)
		}
	}
}

func TestLocale(t *testing.T) {
	for _, tc := range []struct {
		all, msgs, lang string
		zh              bool
	}{
		{"", "", "zh_CN.UTF-8", true},
		{"C", "", "zh_CN.UTF-8", false},
		{"", "zh_TW.UTF-8", "en_US.UTF-8", true},
		{"zh_CN", "", "", true},
		{"", "", "", false},
	} {
		t.Setenv("LC_ALL", tc.all)
		t.Setenv("LC_MESSAGES", tc.msgs)
		t.Setenv("LANG", tc.lang)
		if chinese() != tc.zh {
			t.Errorf("LC_ALL=%q LC_MESSAGES=%q LANG=%q: chinese() = %v", tc.all, tc.msgs, tc.lang, !tc.zh)
		}
	}
	t.Setenv("LC_ALL", "zh_CN.UTF-8")
	if got := say(msgRemoved, "c", "1"); got != "容器: c, ID: 1, 已删除" {
		t.Errorf("zh: %q", got)
	}
	t.Setenv("LC_ALL", "en_US.UTF-8")
	if got := say(msgStarted, "c"); got != "Container c started" {
		t.Errorf("en: %q", got)
	}
}

func TestCommandLine(t *testing.T) {
	if got := commandLine([]string{"top", "-b"}); got != "top -b" {
		t.Errorf("%q", got)
	}
	if got := commandLine([]string{"sh", "-c", "a  b"}); got != `sh -c "a  b"` {
		t.Errorf("%q", got)
	}
}
