package dump

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// filterAll feeds in through a filter in pieces of size chunk.
func filterAll(in string, protect []string, chunk int) (string, error) {
	var out bytes.Buffer
	f := newSQLFilter(&out, protect)
	for i := 0; i < len(in); i += chunk {
		if _, err := f.Write([]byte(in[i:min(i+chunk, len(in))])); err != nil {
			return out.String(), err
		}
	}
	err := f.Close()
	return out.String(), err
}

func TestFilter(t *testing.T) {
	body := "-- MariaDB dump\nDROP TABLE IF EXISTS `RepoOwner`;\nINSERT INTO `RepoOwner` VALUES\n(1,'" +
		strings.Repeat("x", 1000) + "\\nDROP TABLE `Repo`;'),(2,'b');\n-- Dump completed on 2026-11-25 15:04:05\n"
	for _, chunk := range []int{1, 3, 7, 64, 1 << 20} {
		out, err := filterAll(sandboxLine+" \n"+body, LiveTables, chunk)
		if err != nil || out != body {
			t.Fatalf("chunk %d: %v\n%q", chunk, err, out)
		}
		// Only the first line is MariaDB's sandbox line.
		in := "-- x\n" + sandboxLine + "\n" + body
		if out, err := filterAll(in, nil, chunk); err != nil || out != in {
			t.Fatalf("chunk %d: a later sandbox line was dropped: %v", chunk, err)
		}
	}
	bad := map[string]string{
		"drop":            "DROP TABLE IF EXISTS `Repo`;\n",
		"create":          "CREATE TABLE `Branch` (\n",
		"insert":          "INSERT INTO `RepoHead` VALUES (1);\n",
		"lock":            "LOCK TABLES `repo` WRITE;\n",
		"alter":           "/*!40000 ALTER TABLE `Branch` DISABLE KEYS */;\n",
		"use":             "USE `seafile_db`;\n",
		"create database": "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `x`;\n",
	}
	for name, line := range bad {
		for _, chunk := range []int{1, 5, 1 << 20} {
			out, err := filterAll("-- h\n"+line+"-- Dump completed\n", LiveTables, chunk)
			if err == nil {
				t.Errorf("%s: passed", name)
			}
			if strings.Contains(out, line) {
				t.Errorf("%s: the line went through before the refusal", name)
			}
		}
	}
	// Other roles may have tables of these names; no database switch anywhere though.
	if _, err := filterAll("DROP TABLE IF EXISTS `Repo`;\n-- Dump completed\n", nil, 8); err != nil {
		t.Errorf("unprotected: %v", err)
	}
	if _, err := filterAll(body[:len(body)/2], nil, 8); err == nil {
		t.Error("a dump without its closing comment passed")
	}
	if _, err := filterAll("-- Dump completed on x", nil, 8); err != nil {
		t.Errorf("no final newline: %v", err)
	}
}

func TestOptionValue(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:       `"plain"`,
		`a"b\c`:       `"a\"b\\c"`,
		"l1\nl2\tx\r": `"l1\nl2\tx\r"`,
		"#x 'y'":      `"#x 'y'"`,
	} {
		if got := optionValue(in); got != want {
			t.Errorf("optionValue(%q) = %s, want %s", in, got, want)
		}
	}
	if got := scrub("a pw b \"p\\\\w\" c", "pw"); strings.Contains(got, "pw") {
		t.Errorf("scrub: %s", got)
	}
}

func TestToolKnows(t *testing.T) {
	tl := &tool{help: "  -R, --routines      Dump stored routines\n  --set-gtid-purged[=name]\n                      Add 'SET\n  --hex-blob          Dump\n"}
	for opt, want := range map[string]bool{"--routines": true, "--set-gtid-purged": true, "--hex-blob": true, "--column-statistics": false, "--rout": false} {
		if tl.knows(opt) != want {
			t.Errorf("knows(%s) = %v", opt, !want)
		}
	}
}

func TestFreeName(t *testing.T) {
	dir := t.TempDir()
	const n = "2026-11-25T15-04-05Z"
	next := func(want string) {
		t.Helper()
		got, err := freeName(dir, n)
		if err != nil || got != want {
			t.Fatalf("freeName = %q, %v; want %q", got, err, want)
		}
		if err := os.Mkdir(filepath.Join(dir, got), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	next(n)
	next(n + "-2")
	next(n + "-3")
	// Pruning the lower ones must not make a later set take a lower number.
	os.Remove(filepath.Join(dir, n))
	os.Remove(filepath.Join(dir, n+"-2"))
	next(n + "-4")
}

// The collations a dump's tables are created with are collected from its CREATE TABLE
// lines (columns and table options), never from rows, which could hold any text.
func TestFilterCollectsCollations(t *testing.T) {
	in := "CREATE TABLE `Repo` (\n" +
		"  `repo_id` char(37) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
		"  `name` varchar(255) COLLATE=utf8mb4_unicode_ci DEFAULT NULL,\n" +
		"  PRIMARY KEY (`repo_id`)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;\n" +
		"INSERT INTO `RepoOwner` VALUES (1,'COLLATE evil_one'),\n(2,') COLLATE=evil_two');\n" +
		"-- Dump completed on 2026-11-25 15:04:05\n"
	for _, chunk := range []int{1, 5, 1 << 20} {
		var out bytes.Buffer
		f := newSQLFilter(&out, nil)
		for i := 0; i < len(in); i += chunk {
			if _, err := f.Write([]byte(in[i:min(i+chunk, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(slices.Sorted(maps.Keys(f.collations)), " ")
		if want := "utf8mb4_0900_ai_ci utf8mb4_bin utf8mb4_unicode_ci"; got != want {
			t.Errorf("chunk %d: collations %q, want %q", chunk, got, want)
		}
	}
}
