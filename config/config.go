// Package config reads seafbak's YAML configuration. Every key is known: a typo, a
// missing key or a bad value is an error naming the key, the file and the line, because
// a backup tool that silently ignores "primray:" backs up nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"
)

// DefaultPath is used when neither --config nor SEAFBAK_CONFIG names a file.
const DefaultPath = "/etc/seafbak/seafbak.yml"

// DefaultDBTimeout bounds each wait on a database when the file has no db_timeout.
const DefaultDBTimeout = 30 * time.Second

// The range db_timeout must lie in: below a second a busy server fails syncs for
// nothing; above an hour a server that stopped answering holds a library's lock that long.
const (
	minDBTimeout = time.Second
	maxDBTimeout = time.Hour
)

// DefaultWatchPoll is how often `seafbak watch` lists the primary's heads when the file
// has no watch.poll.
const DefaultWatchPoll = 2 * time.Second

// The range watch.poll (and watch's --poll) must lie in: below 100 ms the heads query
// runs all the time on the primary's database for little gain; above 10 minutes watch is
// no faster than the cron scan it is meant to beat.
const (
	MinWatchPoll = 100 * time.Millisecond
	MaxWatchPoll = 10 * time.Minute
)

// Environment variables that carry database passwords, so they need not sit in the file.
const (
	EnvPrimaryPassword = "SEAFBAK_PRIMARY_DB_PASSWORD"
	EnvBackupPassword  = "SEAFBAK_BACKUP_DB_PASSWORD"
	EnvSyncToken       = "SEAFBAK_SYNC_TOKEN"
	// EnvWebhookSecret (or the file EnvWebhookSecret_FILE names) overrides
	// watch.webhook_secret.
	EnvWebhookSecret = "SEAFBAK_WEBHOOK_SECRET"
	// EnvJWTPrivateKey (or the file EnvJWTPrivateKey_FILE names) overrides
	// primary.jwt_private_key.
	EnvJWTPrivateKey = "SEAFBAK_JWT_PRIVATE_KEY"
	// EnvS3SecretKey (or the file EnvS3SecretKey_FILE names) overrides
	// backup.s3.secret_key.
	EnvS3SecretKey = "SEAFBAK_S3_SECRET_KEY"
)

// The backup stores backup.store selects.
const (
	StoreFS = "fs" // a seafile-data directory (backup.data_dir), the default
	StoreS3 = "s3" // S3-compatible object storage in Seafile's S3 layout (backup.s3)
)

// MinWebhookSecret is the least length of watch.webhook_secret.
const MinWebhookSecret = 16

// Config is a loaded, checked configuration.
type Config struct {
	Path    string
	Primary Primary
	Backup  Backup
	// State is the directory of seafbak's own records.
	State string
	// Parallel is how many blocks are copied at once within a library, and how many
	// libraries a scan syncs at once.
	Parallel int
	Dump     Dump
	// MetricsFile, if set, is the .prom file every command rewrites for node_exporter's
	// textfile collector.
	MetricsFile string
	// DBTimeout bounds every wait on the primary's and the backup's database: connecting,
	// and each read and write of a query's traffic, so a server that stops answering
	// (hung, SIGSTOPped, a dead network path) fails the sync and frees its library's
	// lock instead of holding it forever. Applied to Primary.DB and Backup.DB as the
	// driver's timeout, readTimeout and writeTimeout, unless a DSN sets its own.
	DBTimeout time.Duration
	Watch     Watch
}

// Watch is how `seafbak watch` follows the primary.
type Watch struct {
	// Poll is how often the primary's library heads are listed (one query).
	Poll time.Duration
	// WebhookListen, if set, is the host:port where watch receives Seafile 14's
	// webhooks; empty is off.
	WebhookListen string
	// WebhookSecret is the shared secret the webhooks' X-Seafile-Signature is checked
	// with; set whenever WebhookListen is.
	WebhookSecret string
}

// Primary is the Seafile server being backed up. Objects come from exactly one of
// DataDir (a local or mounted seafile-data) and URL (the file server's sync protocol).
type Primary struct {
	DB        *mysql.Config // the primary's seafile database (read only, but for RepoUserToken)
	DataDir   string        // the primary's seafile-data directory
	URL       string        // the file server's sync-protocol base, e.g. https://host/seafhttp
	SyncToken string        // secret that library tokens are derived from
	CAFile    string        // PEM of a private CA for URL
	CcnetDB   string        // name of the ccnet database, on primary.db's server (for dump)
	SeahubDB  string        // name of the seahub database, on primary.db's server (for dump)
	// NotificationURL, if set, is the notification server's websocket (ws://host:8083/
	// or wss://host/notification) that watch subscribes to for change events.
	NotificationURL string
	// JWTPrivateKey is the Seafile server's JWT_PRIVATE_KEY: with it watch signs its
	// own subscription tokens; without it, it asks the file server (primary.url) for them.
	JWTPrivateKey string
}

// Backup is where the backup goes.
type Backup struct {
	// Store is StoreFS (DataDir) or StoreS3 (S3).
	Store   string
	DataDir string
	S3      S3
	DB      *mysql.Config // optional: the backup's seafile database, kept live
	// PerObjectFsync fsyncs each object as it is written instead of one syncfs per sync.
	PerObjectFsync bool
	CcnetDB        string // the backup's ccnet database name, on backup.db's server (restore)
	SeahubDB       string // the backup's seahub database name, on backup.db's server (restore)
}

// S3 is an S3-compatible backup store, one bucket per object kind as Seafile's S3
// backend reads them. Its String never prints the secret.
type S3 struct {
	Endpoint     string // host[:port], no scheme
	Region       string // empty: us-east-1
	CommitBucket string
	FSBucket     string
	BlockBucket  string
	PathStyle    bool // bucket in the path (MinIO, Ceph, Garage, ...), not the host name
	UseHTTPS     bool // default true
	CAFile       string
	// AccessKey and SecretKey; both empty means the AWS environment or shared
	// credentials file.
	AccessKey, SecretKey string
}

func (s S3) String() string {
	scheme := "https"
	if !s.UseHTTPS {
		scheme = "http"
	}
	return fmt.Sprintf("s3 %s://%s (buckets %s, %s, %s)", scheme, s.Endpoint, s.CommitBucket, s.FSBucket, s.BlockBucket)
}

// GoString keeps %#v from printing the secret too.
func (s S3) GoString() string { return s.String() }

// Dump is where `seafbak dump` keeps its dumps.
type Dump struct {
	Dir  string
	Keep int
}

// Resolve picks the config file: the flag, then SEAFBAK_CONFIG, then DefaultPath.
func Resolve(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("SEAFBAK_CONFIG"); env != "" {
		return env
	}
	return DefaultPath
}

// ErrBackupDBIsPrimary: backup.db names the primary's own seafile database, where sync
// would write the backup's heads into the primary's Branch rows (moving a library back
// to the head a long sync started from, leaving newer commits to Seafile's GC).
var ErrBackupDBIsPrimary = errors.New("is the primary's seafile database (primary.db): sync writes the backup's heads into it, which would move the primary's libraries back; give the backup server's own seafile database, or leave backup.db out")

// Error is a problem with one key of the file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("config %s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("config %s: %s: %s", loc, e.Key, e.Msg)
}

// field is one known key: how to store its value.
type field struct {
	required bool
	set      func(n *yaml.Node) error
}

// Load reads and checks the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse checks a configuration's text; path is used in messages.
func Parse(path string, data []byte) (*Config, error) {
	cfg := &Config{Path: path, Parallel: 4, Dump: Dump{Keep: 7}, DBTimeout: DefaultDBTimeout, Watch: Watch{Poll: DefaultWatchPoll},
		Backup: Backup{Store: StoreFS, S3: S3{UseHTTPS: true}}}
	var primaryDSN, backupDSN string
	var durability string
	str := func(dst *string) func(*yaml.Node) error {
		return func(n *yaml.Node) error {
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
				return errors.New("must be a string")
			}
			*dst = n.Value
			return nil
		}
	}
	boolean := func(dst *bool) func(*yaml.Node) error {
		return func(n *yaml.Node) error {
			if n.Kind != yaml.ScalarNode || (n.Value != "true" && n.Value != "false") {
				return errors.New("must be true or false")
			}
			*dst = n.Value == "true"
			return nil
		}
	}
	fields := map[string]field{
		"primary.db":               {required: true, set: str(&primaryDSN)},
		"primary.data_dir":         {set: str(&cfg.Primary.DataDir)},
		"primary.url":              {set: str(&cfg.Primary.URL)},
		"primary.sync_token":       {set: str(&cfg.Primary.SyncToken)},
		"primary.ca_file":          {set: str(&cfg.Primary.CAFile)},
		"primary.ccnet_db":         {set: str(&cfg.Primary.CcnetDB)},
		"primary.seahub_db":        {set: str(&cfg.Primary.SeahubDB)},
		"primary.notification_url": {set: str(&cfg.Primary.NotificationURL)},
		"primary.jwt_private_key":  {set: str(&cfg.Primary.JWTPrivateKey)},
		"backup.ccnet_db":          {set: str(&cfg.Backup.CcnetDB)},
		"backup.seahub_db":         {set: str(&cfg.Backup.SeahubDB)},
		"dump.dir":                 {set: str(&cfg.Dump.Dir)},
		"metrics.file":             {set: str(&cfg.MetricsFile)},
		"dump.keep": {set: func(n *yaml.Node) error {
			v, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || v < 1 || v > 1000 {
				return errors.New("must be a whole number from 1 to 1000")
			}
			cfg.Dump.Keep = v
			return nil
		}},
		"backup.store":            {set: str(&cfg.Backup.Store)},
		"backup.data_dir":         {set: str(&cfg.Backup.DataDir)},
		"backup.s3.endpoint":      {set: str(&cfg.Backup.S3.Endpoint)},
		"backup.s3.region":        {set: str(&cfg.Backup.S3.Region)},
		"backup.s3.commit_bucket": {set: str(&cfg.Backup.S3.CommitBucket)},
		"backup.s3.fs_bucket":     {set: str(&cfg.Backup.S3.FSBucket)},
		"backup.s3.block_bucket":  {set: str(&cfg.Backup.S3.BlockBucket)},
		"backup.s3.path_style":    {set: boolean(&cfg.Backup.S3.PathStyle)},
		"backup.s3.use_https":     {set: boolean(&cfg.Backup.S3.UseHTTPS)},
		"backup.s3.ca_file":       {set: str(&cfg.Backup.S3.CAFile)},
		"backup.s3.access_key":    {set: str(&cfg.Backup.S3.AccessKey)},
		"backup.s3.secret_key":    {set: str(&cfg.Backup.S3.SecretKey)},
		"backup.db":               {set: str(&backupDSN)},
		"backup.durability":       {set: str(&durability)},
		"state":                   {required: true, set: str(&cfg.State)},
		"parallel": {set: func(n *yaml.Node) error {
			v, err := strconv.Atoi(n.Value)
			if n.Kind != yaml.ScalarNode || err != nil || v < 1 || v > 64 {
				return errors.New("must be a whole number from 1 to 64")
			}
			cfg.Parallel = v
			return nil
		}},
		"db_timeout": {set: func(n *yaml.Node) error {
			d, err := time.ParseDuration(n.Value)
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || err != nil || d < minDBTimeout || d > maxDBTimeout {
				return errors.New("must be a duration from 1s to 1h, written like 30s or 2m")
			}
			cfg.DBTimeout = d
			return nil
		}},
		"watch.poll": {set: func(n *yaml.Node) error {
			d, err := time.ParseDuration(n.Value)
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || err != nil || d < MinWatchPoll || d > MaxWatchPoll {
				return errors.New("must be a duration from 100ms to 10m, written like 2s or 500ms")
			}
			cfg.Watch.Poll = d
			return nil
		}},
		"watch.webhook_listen": {set: str(&cfg.Watch.WebhookListen)},
		"watch.webhook_secret": {set: str(&cfg.Watch.WebhookSecret)},
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, &Error{File: path, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: path, Msg: "the file is empty"}
	}
	// A second document (after "---") would never be read: its keys, misspelt or not,
	// would be silently ignored.
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		line := more.Line
		if len(more.Content) > 0 {
			line = more.Content[0].Line // its first key's
		}
		if err != nil {
			return nil, &Error{File: path, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		return nil, &Error{File: path, Line: line, Msg: "a second YAML document (after ---): put every key in one"}
	}
	seen := map[string]int{} // key -> line of its value
	if err := walk(path, "", doc.Content[0], fields, seen); err != nil {
		return nil, err
	}
	for _, key := range sortedKeys(fields) {
		if _, ok := seen[key]; fields[key].required && !ok {
			return nil, &Error{File: path, Key: key, Msg: "missing; it is required"}
		}
	}
	var err error
	if cfg.Primary.DB, err = parseDSN(primaryDSN, EnvPrimaryPassword, cfg.DBTimeout); err != nil {
		return nil, &Error{File: path, Line: seen["primary.db"], Key: "primary.db", Msg: err.Error()}
	}
	if backupDSN != "" {
		if cfg.Backup.DB, err = parseDSN(backupDSN, EnvBackupPassword, cfg.DBTimeout); err != nil {
			return nil, &Error{File: path, Line: seen["backup.db"], Key: "backup.db", Msg: err.Error()}
		}
		if b, p := cfg.Backup.DB, cfg.Primary.DB; b.Net == p.Net && b.Addr == p.Addr && b.DBName == p.DBName {
			return nil, &Error{File: path, Line: seen["backup.db"], Key: "backup.db", Msg: ErrBackupDBIsPrimary.Error()}
		}
	}
	switch durability {
	case "", "batch":
	case "per-object":
		cfg.Backup.PerObjectFsync = true
	default:
		return nil, &Error{File: path, Line: seen["backup.durability"], Key: "backup.durability", Msg: fmt.Sprintf("%q is not one of batch, per-object", durability)}
	}
	if err := checkStore(path, cfg, seen); err != nil {
		return nil, err
	}
	if err := checkSource(path, cfg, seen); err != nil {
		return nil, err
	}
	if err := checkWebhook(path, cfg, seen); err != nil {
		return nil, err
	}
	if err := checkNotification(path, cfg, seen); err != nil {
		return nil, err
	}
	for key, v := range map[string]string{"primary.data_dir": cfg.Primary.DataDir, "backup.data_dir": cfg.Backup.DataDir, "state": cfg.State, "dump.dir": cfg.Dump.Dir, "metrics.file": cfg.MetricsFile, "primary.ca_file": cfg.Primary.CAFile, "backup.s3.ca_file": cfg.Backup.S3.CAFile} {
		if _, set := seen[key]; set && !strings.HasPrefix(v, "/") {
			return nil, &Error{File: path, Line: seen[key], Key: key, Msg: fmt.Sprintf("%q must be an absolute path", v)}
		}
	}
	if cfg.MetricsFile != "" && !strings.HasSuffix(cfg.MetricsFile, ".prom") {
		return nil, &Error{File: path, Line: seen["metrics.file"], Key: "metrics.file", Msg: "must end in .prom, the only files node_exporter's textfile collector reads"}
	}
	if cfg.Backup.Store == StoreFS && cfg.Primary.DataDir != "" && Nested(cfg.Primary.DataDir, cfg.Backup.DataDir) {
		return nil, &Error{File: path, Line: seen["backup.data_dir"], Key: "backup.data_dir",
			Msg: fmt.Sprintf("%q and primary.data_dir %q are the same directory, or one is inside the other: the backup would write into the primary's", cfg.Backup.DataDir, cfg.Primary.DataDir)}
	}
	// seafbak's own files (records, dumps holding password hashes) do not go into the
	// primary's seafile-data either.
	for _, k := range []struct {
		key, dir string
		file     bool // a file in dir: only dir inside the primary's is refused
	}{{"state", cfg.State, false}, {"dump.dir", cfg.Dump.Dir, false}, {"metrics.file", filepath.Dir(cfg.MetricsFile), true}} {
		inside := Nested(cfg.Primary.DataDir, k.dir)
		if k.file {
			p, d := filepath.Clean(cfg.Primary.DataDir), filepath.Clean(k.dir)
			inside = d == p || strings.HasPrefix(d, p+"/")
		}
		if _, set := seen[k.key]; set && cfg.Primary.DataDir != "" && inside {
			return nil, &Error{File: path, Line: seen[k.key], Key: k.key,
				Msg: fmt.Sprintf("%q and primary.data_dir %q are the same directory, or one is inside the other: seafbak would write its own files into the primary's", k.dir, cfg.Primary.DataDir)}
		}
	}
	return cfg, nil
}

// Nested reports whether the absolute directory names a and b name the same directory,
// or one inside the other, by their names alone ("/srv/seafile-data/" is
// "/srv/seafile-data"). Symlinks and bind mounts are for the caller to resolve.
func Nested(a, b string) bool {
	a, b = filepath.Clean(a), filepath.Clean(b)
	return a == b || a == "/" || b == "/" || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// checkStore checks backup.store and the keys of the store it selects; the other
// store's keys are refused, so a half-edited file cannot back up somewhere unexpected.
func checkStore(path string, cfg *Config, seen map[string]int) error {
	b := &cfg.Backup
	var s3Keys []string
	for k := range seen {
		if strings.HasPrefix(k, "backup.s3.") {
			s3Keys = append(s3Keys, k)
		}
	}
	sort.Strings(s3Keys)
	switch b.Store {
	case StoreFS:
		if _, set := seen["backup.data_dir"]; !set {
			return &Error{File: path, Key: "backup.data_dir", Msg: "missing; it is required with backup.store: fs (the default); or set backup.store: s3 and backup.s3"}
		}
		if len(s3Keys) > 0 {
			return &Error{File: path, Line: seen[s3Keys[0]], Key: s3Keys[0], Msg: "only applies with backup.store: s3"}
		}
		return nil
	case StoreS3:
	default:
		return &Error{File: path, Line: seen["backup.store"], Key: "backup.store", Msg: fmt.Sprintf("%q is not one of fs, s3", b.Store)}
	}
	for _, k := range []string{"backup.data_dir", "backup.durability"} {
		if _, set := seen[k]; set {
			return &Error{File: path, Line: seen[k], Key: k, Msg: "only applies with backup.store: fs (an S3 object is durable once its upload returned)"}
		}
	}
	s := &b.S3
	for _, k := range []struct {
		key string
		v   string
	}{{"backup.s3.endpoint", s.Endpoint}, {"backup.s3.commit_bucket", s.CommitBucket}, {"backup.s3.fs_bucket", s.FSBucket}, {"backup.s3.block_bucket", s.BlockBucket}} {
		if k.v == "" {
			return &Error{File: path, Line: seen[k.key], Key: k.key, Msg: "missing or empty; it is required with backup.store: s3"}
		}
	}
	if strings.Contains(s.Endpoint, "://") || strings.ContainsAny(s.Endpoint, "/ ?#@") {
		shown := fmt.Sprintf("%q", s.Endpoint)
		if strings.Contains(s.Endpoint, "@") {
			shown = "an address with credentials in it" // never echoed: the keys go in access_key and secret_key
		}
		return &Error{File: path, Line: seen["backup.s3.endpoint"], Key: "backup.s3.endpoint", Msg: fmt.Sprintf("%s is not a host[:port] (e.g. s3.eu-west-1.amazonaws.com or minio.internal:9000); give no scheme, https is backup.s3.use_https", shown)}
	}
	if host, port, err := net.SplitHostPort(s.Endpoint); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return &Error{File: path, Line: seen["backup.s3.endpoint"], Key: "backup.s3.endpoint", Msg: fmt.Sprintf("%q is not a host[:port]", s.Endpoint)}
		}
	}
	host := s.Endpoint
	if h, _, err := net.SplitHostPort(s.Endpoint); err == nil {
		host = h
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil && !s.PathStyle {
		// Virtual-host style asks for <bucket>.<endpoint>: no such name for an address.
		return &Error{File: path, Line: seen["backup.s3.endpoint"], Key: "backup.s3.endpoint", Msg: fmt.Sprintf("%q is an IP address, which cannot take a bucket name in front of it: add backup.s3.path_style: true (or give the endpoint's host name)", s.Endpoint)}
	}
	buckets := map[string]string{}
	for _, k := range []struct{ key, v string }{{"backup.s3.commit_bucket", s.CommitBucket}, {"backup.s3.fs_bucket", s.FSBucket}, {"backup.s3.block_bucket", s.BlockBucket}} {
		if !validBucket(k.v) {
			return &Error{File: path, Line: seen[k.key], Key: k.key, Msg: fmt.Sprintf("%q is not a bucket name (3-63 characters: a-z, 0-9, '.', '-')", k.v)}
		}
		if other, dup := buckets[k.v]; dup {
			return &Error{File: path, Line: seen[k.key], Key: k.key, Msg: fmt.Sprintf("is the same bucket as %s; Seafile's S3 layout keys every kind as <store id>/<object id>, so each kind needs its own bucket", other)}
		}
		buckets[k.v] = k.key
	}
	if _, set := seen["backup.s3.ca_file"]; set && !s.UseHTTPS {
		return &Error{File: path, Line: seen["backup.s3.ca_file"], Key: "backup.s3.ca_file", Msg: "only applies with backup.s3.use_https: true"}
	}
	secret, err := secretFromEnv(EnvS3SecretKey)
	if err != nil {
		return &Error{File: path, Line: seen["backup.s3.secret_key"], Key: "backup.s3.secret_key", Msg: err.Error()}
	}
	if secret != "" {
		s.SecretKey = secret
	}
	if (s.AccessKey == "") != (s.SecretKey == "") {
		return &Error{File: path, Line: seen["backup.s3.access_key"], Key: "backup.s3.access_key", Msg: "access_key and secret_key (or " + EnvS3SecretKey + ") go together; give neither to use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials"}
	}
	return nil
}

// validBucket is S3's bucket naming rule, enough to catch a path or a URL given as one.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return b[0] != '.' && b[0] != '-' && b[len(b)-1] != '.' && b[len(b)-1] != '-'
}

// checkSource checks that objects come from exactly one place, with what it needs.
func checkSource(path string, cfg *Config, seen map[string]int) error {
	p := &cfg.Primary
	_, hasDir := seen["primary.data_dir"]
	_, hasURL := seen["primary.url"]
	switch {
	case hasDir && hasURL:
		return &Error{File: path, Line: seen["primary.url"], Key: "primary.url", Msg: "give either primary.data_dir (a local or mounted seafile-data) or primary.url (the file server), not both"}
	case !hasDir && !hasURL:
		return &Error{File: path, Key: "primary", Msg: "give primary.data_dir (a local or mounted seafile-data) or primary.url (the file server's sync address, e.g. https://seafile.example.com/seafhttp)"}
	case hasDir:
		for _, k := range []string{"primary.sync_token", "primary.ca_file"} {
			if _, set := seen[k]; set {
				return &Error{File: path, Line: seen[k], Key: k, Msg: "only applies with primary.url"}
			}
		}
		return nil
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return &Error{File: path, Line: seen["primary.url"], Key: "primary.url", Msg: "is not an http(s)://host[:port]/path address without user or query (e.g. https://seafile.example.com/seafhttp)"}
	}
	tok, err := secretFromEnv(EnvSyncToken)
	if err != nil {
		return &Error{File: path, Line: seen["primary.sync_token"], Key: "primary.sync_token", Msg: err.Error()}
	}
	if tok != "" {
		p.SyncToken = tok
	}
	if len(p.SyncToken) < 16 {
		return &Error{File: path, Line: seen["primary.sync_token"], Key: "primary.sync_token", Msg: "missing or shorter than 16 characters; generate one once with: openssl rand -hex 32 (or set " + EnvSyncToken + ")"}
	}
	return nil
}

// checkWebhook checks watch.webhook_listen and watch.webhook_secret: both or neither
// (the secret may come from EnvWebhookSecret instead), a host:port with a port number,
// and a secret of at least MinWebhookSecret characters.
func checkWebhook(path string, cfg *Config, seen map[string]int) error {
	w := &cfg.Watch
	if _, set := seen["watch.webhook_listen"]; !set {
		if _, set := seen["watch.webhook_secret"]; set {
			return &Error{File: path, Line: seen["watch.webhook_secret"], Key: "watch.webhook_secret", Msg: "only applies with watch.webhook_listen"}
		}
		return nil
	}
	host, port, err := net.SplitHostPort(w.WebhookListen)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535 || strings.ContainsAny(host, " /") {
		return &Error{File: path, Line: seen["watch.webhook_listen"], Key: "watch.webhook_listen", Msg: fmt.Sprintf("%q is not a host:port to listen on (e.g. 127.0.0.1:8089, or :8089 for every address)", w.WebhookListen)}
	}
	secret, err := secretFromEnv(EnvWebhookSecret)
	if err != nil {
		return &Error{File: path, Line: seen["watch.webhook_secret"], Key: "watch.webhook_secret", Msg: err.Error()}
	}
	if secret != "" {
		w.WebhookSecret = secret
	}
	if len(w.WebhookSecret) < MinWebhookSecret {
		return &Error{File: path, Line: seen["watch.webhook_secret"], Key: "watch.webhook_secret", Msg: "missing or shorter than 16 characters; it is required with watch.webhook_listen and must be the secret set on the webhook in Seahub (generate one with: openssl rand -hex 32, or set " + EnvWebhookSecret + ")"}
	}
	return nil
}

// checkNotification checks primary.notification_url and where its tokens come from:
// primary.jwt_private_key (or EnvJWTPrivateKey), or else the file server (primary.url).
func checkNotification(path string, cfg *Config, seen map[string]int) error {
	p := &cfg.Primary
	key, err := secretFromEnv(EnvJWTPrivateKey)
	if err != nil {
		return &Error{File: path, Line: seen["primary.jwt_private_key"], Key: "primary.jwt_private_key", Msg: err.Error()}
	}
	if key != "" {
		p.JWTPrivateKey = key
	}
	if _, set := seen["primary.notification_url"]; !set {
		if _, set := seen["primary.jwt_private_key"]; set {
			return &Error{File: path, Line: seen["primary.jwt_private_key"], Key: "primary.jwt_private_key", Msg: "only applies with primary.notification_url"}
		}
		return nil
	}
	u, err := url.Parse(p.NotificationURL)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		shown := fmt.Sprintf("%q", p.NotificationURL)
		if strings.Contains(p.NotificationURL, "@") {
			shown = "an address with a user or password in it" // never echoed, parsed or not
		}
		return &Error{File: path, Line: seen["primary.notification_url"], Key: "primary.notification_url", Msg: fmt.Sprintf("%s is not a ws(s)://host[:port][/path] address (e.g. ws://seafile-host:8083/, or wss://seafile.example.com/notification behind Seafile's proxy)", shown)}
	}
	if p.JWTPrivateKey == "" && p.URL == "" {
		return &Error{File: path, Line: seen["primary.notification_url"], Key: "primary.notification_url", Msg: "needs primary.jwt_private_key (JWT_PRIVATE_KEY from the Seafile server's .env or seafile.conf, or set " + EnvJWTPrivateKey + ") when objects come from primary.data_dir: there is no file server to ask for subscription tokens"}
	}
	if _, set := seen["primary.jwt_private_key"]; set && p.JWTPrivateKey == "" {
		return &Error{File: path, Line: seen["primary.jwt_private_key"], Key: "primary.jwt_private_key", Msg: "is empty"}
	}
	return nil
}

// walk checks a mapping's keys against the known ones, recursing into sections.
func walk(path, prefix string, n *yaml.Node, fields map[string]field, seen map[string]int) error {
	if n.Kind != yaml.MappingNode {
		where := "the file"
		if prefix != "" {
			where = strings.TrimSuffix(prefix, ".")
		}
		return &Error{File: path, Line: n.Line, Key: strings.TrimSuffix(prefix, "."), Msg: where + " must be a mapping of keys to values"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for v.Kind == yaml.AliasNode && v.Alias != nil { // "ccnet_db: *db": the anchored value
			v = v.Alias
		}
		key := prefix + k.Value
		if _, dup := seen[key]; dup {
			return &Error{File: path, Line: k.Line, Key: key, Msg: "given twice"}
		}
		seen[key] = v.Line
		if f, ok := fields[key]; ok {
			if err := f.set(v); err != nil {
				return &Error{File: path, Line: v.Line, Key: key, Msg: err.Error()}
			}
			continue
		}
		if isSection(key, fields) {
			if err := walk(path, key+".", v, fields, seen); err != nil {
				return err
			}
			continue
		}
		return &Error{File: path, Line: k.Line, Key: key, Msg: unknownKey(key, fields)}
	}
	return nil
}

func isSection(key string, fields map[string]field) bool {
	for k := range fields {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

// parseDSN reads a go-sql-driver DSN. Its messages never repeat the DSN, which may hold
// a password; a (non-empty) password from env replaces the one in the DSN. timeout
// becomes the driver's connect, read and write deadlines, each unless the DSN sets its
// own (timeout=, readTimeout=, writeTimeout=): socket deadlines, renewed at every read
// and write, so every query and transaction on any connection made from this config
// fails once the server has been silent that long (a hung or stopped server), without
// bounding how long a healthy query may stream rows. Every connection seafbak's Go code
// makes is built from these configs, so this is the one place the deadlines are set;
// the dump and load tools take only the connect timeout from them.
func parseDSN(dsn, env string, timeout time.Duration) (*mysql.Config, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errors.New(`is not a valid database address; write it like "user@tcp(host:3306)/seafile_db" or "user@unix(/run/mysqld/mysqld.sock)/seafile_db"`)
	}
	if c.DBName == "" {
		return nil, errors.New("names no database; end it with /seafile_db (your seafile database's name)")
	}
	// Set but empty counts as unset: an empty variable is far more often a template or
	// an unset secret ("PASSWORD=$NOT_SET") than a real empty password, and replacing
	// the file's password with it would only fail later as an access denied.
	pw, err := secretFromEnv(env)
	if err != nil {
		return nil, err
	}
	if pw != "" {
		c.Passwd = pw
	}
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = timeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = timeout
	}
	c.ParseTime = false
	c.InterpolateParams = false
	return c, nil
}

// unknownKey says what a key not known may have meant: the known key closest to it
// if one is close (a typo), and the keys known beside it, in its own section (all of
// them on one line was 40 keys, 950 characters).
func unknownKey(key string, fields map[string]field) string {
	best, bestDist := "", len(key)/3+1
	for k := range fields {
		if d := editDistance(key, k); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	section := ""
	if i := strings.LastIndex(key, "."); i >= 0 {
		section = key[:i+1]
	}
	beside := map[string]bool{}
	for k := range fields {
		if rest, ok := strings.CutPrefix(k, section); ok {
			if name, _, sub := strings.Cut(rest, "."); sub {
				beside[name+".*"] = true
			} else {
				beside[name] = true
			}
		}
	}
	names := make([]string, 0, len(beside))
	for n := range beside {
		names = append(names, section+n)
	}
	sort.Strings(names)
	msg := "unknown key"
	if best != "" {
		msg += "; did you mean " + best + "?"
	}
	return msg + " (known here: " + strings.Join(names, ", ") + ")"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys(m map[string]field) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// secretFromEnv reads a secret from the environment: NAME itself, or the file NAME_FILE
// names (Docker and systemd credentials hand secrets over as files). Empty means unset.
// A trailing newline in the file is not part of the secret.
func secretFromEnv(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	file := os.Getenv(name + "_FILE")
	if file == "" {
		return "", nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	v := strings.TrimRight(string(data), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s_FILE: %s is empty", name, file)
	}
	return v, nil
}
