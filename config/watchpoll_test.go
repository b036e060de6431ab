package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// watch.poll is how often watch lists the primary's heads: 2 s when the file does not
// say, and only a duration from 100ms to 10m otherwise.
func TestWatchPoll(t *testing.T) {
	c, err := Parse("seafbak.yml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Watch.Poll != DefaultWatchPoll || DefaultWatchPoll != 2*time.Second {
		t.Fatalf("default %s", c.Watch.Poll)
	}
	for v, want := range map[string]time.Duration{"100ms": MinWatchPoll, "500ms": 500 * time.Millisecond, "10m": MaxWatchPoll, "1m30s": 90 * time.Second} {
		c, err := Parse("seafbak.yml", []byte(good+"watch:\n  poll: "+v+"\n"))
		if err != nil || c.Watch.Poll != want {
			t.Errorf("watch.poll: %s: got %v, %v", v, c, err)
		}
	}
}

func TestWatchPollErrors(t *testing.T) {
	for _, v := range []string{"2", "0s", "99ms", "11m", "-1s", "often", "", "[1s]", "{a: 1}"} {
		_, err := Parse("seafbak.yml", []byte(good+"watch:\n  poll: "+v+"\n"))
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Key != "watch.poll" || cerr.Line != 9 ||
			!strings.Contains(err.Error(), "seafbak.yml:9: watch.poll: must be a duration from 100ms to 10m, written like 2s or 500ms") {
			t.Errorf("watch.poll: %q: got %v", v, err)
		}
	}
	for text, want := range map[string]string{
		good + "watch:\n  pol: 2s\n":              "seafbak.yml:9: watch.pol: unknown key",
		good + "watch: 2s\n":                      "seafbak.yml:8: watch: watch must be a mapping",
		good + "watch:\n  poll: 2s\n  poll: 3s\n": "seafbak.yml:10: watch.poll: given twice",
		good + "watch_poll: 2s\n":                 "unknown key",
	} {
		if _, err := Parse("seafbak.yml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
}
