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

// Lines mariadb-dump does not write but a rewritten set, or another tool, could: each
// that may touch a live table or switch database is refused (found by review: all of
// these loaded, dropping Repo or writing into another database).
func TestFilterRefusesWhatItCannotBeSureOf(t *testing.T) {
	for name, line := range map[string]string{
		"unquoted name":                     "DROP TABLE IF EXISTS Repo;\n",
		"qualified name":                    "DROP TABLE IF EXISTS `seafile`.`Repo`;\n",
		"a second statement on a line":      "/*!40101 SET NAMES utf8mb4 */; DROP TABLE IF EXISTS `Repo`;\n",
		"delete":                            "DELETE FROM `Repo`;\n",
		"update":                            "UPDATE `Branch` SET commit_id = 'x';\n",
		"create or replace":                 "CREATE OR REPLACE TABLE `Repo` (x int);\n",
		"rename, the live table second":     "RENAME TABLE `RepoOwner` TO `tmpx`, `Repo` TO `RepoOwner`;\n",
		"truncate":                          "TRUNCATE TABLE `RepoHead`;\n",
		"USE and a tab":                     "USE\tother;\n",
		"USE alone on its line":             "USE\nother;\n",
		"a versioned USE after a statement": "/*!40101 SET @a=1 */; /*!50001 USE other */;\n",
		"create schema":                     "CREATE SCHEMA `other`;\n",
	} {
		if _, err := filterAll(line+"-- Dump completed on 2026-11-25 15:04:05\n", LiveTables, 7); err == nil {
			t.Errorf("%s: %q passed the filter", name, line)
		}
	}
	// What mariadb-dump writes passes, names that merely start like a live one too.
	ok := "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n" +
		"DROP TABLE IF EXISTS `RepoOwner`;\n/*!40101 SET character_set_client = utf8mb4 */;\n" +
		"CREATE TABLE `RepoOwner` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n" +
		"LOCK TABLES `RepoOwner` WRITE;\n/*!40000 ALTER TABLE `RepoOwner` DISABLE KEYS */;\n" +
		"INSERT INTO `RepoOwner` VALUES (1,'a; DROP TABLE `Repo`; USE other');\n" +
		"/*!40000 ALTER TABLE `RepoOwner` ENABLE KEYS */;\nUNLOCK TABLES;\nUSEFUL_NOTHING;\n" +
		"-- Dump completed on 2026-11-25 15:04:05\n"
	if _, err := filterAll(ok, LiveTables, 7); err != nil {
		t.Errorf("a dump as mariadb-dump writes it: %v", err)
	}
}
