package main

import (
	"fmt"
	"os"
	"path/filepath"
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
	var mountPoint, fsType, source string
	for _, line := range strings.Split(string(info), "\n") {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		mp := fields[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(mountPoint) {
			mountPoint, fsType, source = mp, tail[0], tail[1]
		}
	}
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
