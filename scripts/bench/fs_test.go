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

func TestMountOfUnescapesMountPoints(t *testing.T) {
	info := `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
41 22 7:0 / /mnt/backup\040disk rw,relatime - ext4 /dev/loop0 rw
42 22 0:40 / /mnt/back rw,relatime - tmpfs tmp\134fs rw
`
	for abs, want := range map[string]string{
		"/mnt/backup disk/w": "/mnt/backup disk ext4 /dev/loop0",
		"/mnt/back/w":        `/mnt/back tmpfs tmp\fs`,
		"/mnt/backup":        "/ ext4 /dev/vda",
	} {
		mp, typ, src := mountOf(abs, info)
		if got := mp + " " + typ + " " + src; got != want {
			t.Errorf("mountOf(%q) = %q, want %q", abs, got, want)
		}
	}
}
