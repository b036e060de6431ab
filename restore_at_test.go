package main

import (
	"strings"
	"testing"
	"time"
)

// --at reads the forms it documents, and refuses a local time that names no instant
// or two (DST), where --list's form with its offset names one.
func TestParseTimeAroundDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip(err)
	}
	saved := time.Local
	time.Local = berlin
	defer func() { time.Local = saved }()
	for _, c := range []struct {
		in      string
		want    time.Time // zero: an error
		errText string
	}{
		{"2026-10-25 02:20", time.Time{}, "happened twice"},
		{"2026-10-25 02:20:00", time.Time{}, `"2026-10-25 02:20:00 +0200" or "2026-10-25 02:20:00 +0100"`},
		{"2026-03-29 02:30", time.Time{}, "no such local time"},
		{"2026-10-25 02:20:00 +0200", time.Date(2026, 10, 25, 0, 20, 0, 0, time.UTC), ""},
		{"2026-10-25 02:20:00 +0100", time.Date(2026, 10, 25, 1, 20, 0, 0, time.UTC), ""},
		{"2026-10-25 03:20", time.Date(2026, 10, 25, 2, 20, 0, 0, time.UTC), ""},
		{"2026-10-25", time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC), ""},
		{"2026-11-24T18:00:00Z", time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC), ""},
		{"1764007200", time.Unix(1764007200, 0), ""},
		{"yesterday", time.Time{}, "give a time like"},
		// Forms Go's parser takes beyond its layouts (found by review).
		{"2026-11-24 9:00", time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC), ""},
		{"2026-11-24 9:05:00", time.Date(2026, 11, 24, 8, 5, 0, 0, time.UTC), ""},
		{"2026-11-24 18:00:00.5", time.Date(2026, 11, 24, 17, 0, 0, 5e8, time.UTC), ""},
		{"2026-11-24T18:00:00.250", time.Date(2026, 11, 24, 17, 0, 0, 25e7, time.UTC), ""},
		{"2026-03-29 2:30", time.Time{}, "no such local time"},
	} {
		got, err := parseTime(c.in)
		switch {
		case c.want.IsZero() && (err == nil || !strings.Contains(err.Error(), c.errText)):
			t.Errorf("%q: %v %v, want an error saying %q", c.in, got, err, c.errText)
		case !c.want.IsZero() && (err != nil || !got.Equal(c.want)):
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
	}
	// What --list prints, --at reads back as the same instant.
	for _, at := range []time.Time{time.Date(2026, 10, 25, 0, 20, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 20, 0, 0, time.UTC)} {
		if got, err := parseTime(at.Local().Format(listTime)); err != nil || !got.Equal(at) {
			t.Errorf("%s listed as %q read back as %v %v", at, at.Local().Format(listTime), got, err)
		}
	}
}
