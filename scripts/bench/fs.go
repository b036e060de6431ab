package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// describeFS names the filesystem the benchmark writes on, because file creation costs
// depend on it more than on anything seafbak does: ext4 without a journal (this
// project's CI VM has its root so) will not reuse an inode freed in the last 60-300 s,
// and scans past every such inode on each new file. Each tool here runs right after the
// previous one's copy is deleted, so on such a filesystem every small-file figure
// measures that scan (issue 10: 3x slower for seafbak, whose new inodes landed in the
// freed ones' groups, and up to 2x for rsync and cp between runs).
func describeFS(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown filesystem: " + err.Error()
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown filesystem: " + err.Error()
	}
	mountPoint, fsType, source := mountOf(abs, string(info))
	if mountPoint == "" {
		return "unknown filesystem"
	}
	desc := fmt.Sprintf("%s on %s (%s)", fsType, mountPoint, source)
	if fsType == "ext4" {
		matches, _ := filepath.Glob("/proc/fs/jbd2/" + filepath.Base(source) + "-*")
		if len(matches) == 0 {
			desc += ", WITHOUT a journal: small-file figures here measure ext4's scan past recently freed inodes (see describeFS); use -dir on a journaled filesystem"
		} else {
			desc += ", journaled"
		}
	}
	return desc
}

// mountOf finds, in a /proc/self/mountinfo text, the mount that holds the absolute path
// abs: the one with the longest mount point above it.
func mountOf(abs, mountinfo string) (mountPoint, fsType, source string) {
	for _, line := range strings.Split(mountinfo, "\n") {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		mp := unescapeMount(fields[4])
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(mountPoint) {
			mountPoint, fsType, source = mp, tail[0], unescapeMount(tail[1])
		}
	}
	return mountPoint, fsType, source
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline and backslash
// (a mount point "/mnt/backup disk" is written "/mnt/backup\040disk").
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
