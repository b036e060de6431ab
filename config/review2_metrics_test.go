package config

import "testing"

// The metrics file beside the primary's seafile-data (its directory holds the data dir,
// the file itself is not in it) writes nothing into the primary: it must be accepted.
func TestMetricsFileBesidePrimaryDataDirAccepted(t *testing.T) {
	text := good + "metrics:\n  file: /mnt/primary/seafbak.prom\n"
	if _, err := Parse("seafbak.yml", []byte(text)); err != nil {
		t.Fatalf("metrics.file /mnt/primary/seafbak.prom beside primary.data_dir /mnt/primary/seafile-data refused: %v", err)
	}
}
