package dump

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
)

// Only the first headMax bytes of a line are seen: a column whose COLLATE name straddles
// byte headMax was noted by the part that fits, a name no server has, and a failover
// refused the dump for it (found by review).
func TestCollationCutAtTheHeadIsNotNoted(t *testing.T) {
	tail := " CHARACTER SET utf8mb4 COLLATE "
	pre := "  `state` enum("
	// Pad the enum list so that "utf8mb4_unicode_ci" starts 10 bytes before headMax.
	list := "'a'"
	for len(pre)+len(list)+len(") ")+len(tail)-len(" ") < headMax-10 {
		list += ",'a'"
	}
	col := pre + list + ")" + tail + "utf8mb4_unicode_ci NOT NULL,\n"
	if i := strings.Index(col, "utf8mb4_unicode_ci"); i >= headMax || i+len("utf8mb4_unicode_ci") <= headMax {
		t.Fatalf("test setup: the name is at %d..%d, headMax %d", i, i+18, headMax)
	}
	in := "CREATE TABLE `T` (\n" + col + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;\n-- Dump completed on 2026-11-25 15:04:05\n"
	var out bytes.Buffer
	f := newSQLFilter(&out, nil)
	if _, err := f.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(f.collations))
	if !slices.Equal(got, []string{"utf8mb4_unicode_ci"}) {
		t.Errorf("collations %q, want only utf8mb4_unicode_ci", got)
	}
}

// A column's DEFAULT or COMMENT holding the word COLLATE gave the word after it as a
// collation (found by review).
func TestCollationInAStringIsNotNoted(t *testing.T) {
	in := "CREATE TABLE `T` (\n  `sort` varchar(32) DEFAULT NULL COMMENT 'COLLATE order for the listing',\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n-- Dump completed on 2026-11-25 15:04:05\n"
	var out bytes.Buffer
	f := newSQLFilter(&out, nil)
	f.Write([]byte(in))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.collations) != 0 {
		t.Errorf("collations %v from a comment", slices.Sorted(maps.Keys(f.collations)))
	}
}

// mariadb-dump --triggers --routines writes a trigger's or procedure's body as it was
// written, statements unquoted: the filter passes them unless they name a live table
// (found by review: every dump of a database with such a trigger failed).
func TestFilterPassesATriggerBody(t *testing.T) {
	in := "DROP TABLE IF EXISTS `RepoOwner`;\n" +
		"/*!50003 SET @saved_cs_client      = @@character_set_client */ ;\n" +
		"DELIMITER ;;\n" +
		"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER owner_audit AFTER INSERT ON RepoOwner FOR EACH ROW\n" +
		"BEGIN\n" +
		"  INSERT INTO owner_log (repo_id, owner_id) VALUES (NEW.repo_id, NEW.owner_id);\n" +
		"  UPDATE owner_count SET n = n + 1;\n" +
		"END */;;\n" +
		"DELIMITER ;\n" +
		"-- Dump completed on 2026-11-25 15:04:05\n"
	if _, err := filterAll(in, LiveTables, 7); err != nil {
		t.Errorf("a trigger mariadb-dump writes: %v", err)
	}
	if _, err := filterAll(strings.Replace(in, "UPDATE owner_count", "UPDATE Branch", 1), LiveTables, 7); err == nil {
		t.Errorf("a trigger body updating Branch passed")
	}
}
