package main

import (
	"strings"
	"testing"
)

func TestDescribeFSFindsTheMount(t *testing.T) {
	for _, dir := range []string{"/", t.TempDir()} {
		got := describeFS(dir)
		if strings.HasPrefix(got, "unknown filesystem") || !strings.Contains(got, " on /") {
			t.Errorf("describeFS(%s) = %q, want its filesystem named", dir, got)
		}
		t.Logf("%s: %s", dir, got)
	}
}
