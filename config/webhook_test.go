package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const webhookSecret = "0123456789abcdef0123"

// watch.webhook_listen is off unless set; set, it needs a host:port and a secret of at
// least 16 characters, from the file or SEAFBAK_WEBHOOK_SECRET(_FILE), which win.
func TestWebhookKeys(t *testing.T) {
	t.Setenv(EnvWebhookSecret, "")
	t.Setenv(EnvWebhookSecret+"_FILE", "")
	c, err := Parse("seafbak.yml", []byte(good))
	if err != nil || c.Watch.WebhookListen != "" || c.Watch.WebhookSecret != "" {
		t.Fatalf("default: %+v, %v", c, err)
	}
	for _, listen := range []string{"127.0.0.1:8089", ":8089", "[::1]:8089", "backup.example.com:443"} {
		c, err := Parse("seafbak.yml", []byte(good+"watch:\n  webhook_listen: \""+listen+"\"\n  webhook_secret: "+webhookSecret+"\n"))
		if err != nil || c.Watch.WebhookListen != listen || c.Watch.WebhookSecret != webhookSecret {
			t.Errorf("%s: got %+v, %v", listen, c, err)
		}
	}
	// The environment wins over the file, and may be the only place of the secret.
	t.Setenv(EnvWebhookSecret, "from-the-environment-0123")
	for _, text := range []string{
		good + "watch:\n  webhook_listen: :8089\n  webhook_secret: " + webhookSecret + "\n",
		good + "watch:\n  webhook_listen: :8089\n",
	} {
		if c, err := Parse("seafbak.yml", []byte(text)); err != nil || c.Watch.WebhookSecret != "from-the-environment-0123" {
			t.Errorf("%q: got %+v, %v", text, c, err)
		}
	}
	// Without webhook_listen the variable is ignored: it may be set for every service.
	if c, err := Parse("seafbak.yml", []byte(good)); err != nil || c.Watch.WebhookSecret != "" {
		t.Errorf("env without listen: %+v, %v", c, err)
	}
	t.Setenv(EnvWebhookSecret, "")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvWebhookSecret+"_FILE", file)
	if c, err := Parse("seafbak.yml", []byte(good+"watch:\n  webhook_listen: :8089\n")); err != nil || c.Watch.WebhookSecret != "from-a-file-0123456789" {
		t.Errorf("secret file: %+v, %v", c, err)
	}
	t.Setenv(EnvWebhookSecret+"_FILE", filepath.Join(t.TempDir(), "missing"))
	if _, err := Parse("seafbak.yml", []byte(good+"watch:\n  webhook_listen: :8089\n")); err == nil || !strings.Contains(err.Error(), EnvWebhookSecret+"_FILE") {
		t.Errorf("missing secret file: got %v", err)
	}
}

func TestWebhookKeyErrors(t *testing.T) {
	t.Setenv(EnvWebhookSecret, "")
	t.Setenv(EnvWebhookSecret+"_FILE", "")
	type want struct {
		key  string
		line int
		msg  string
	}
	sec := "  webhook_secret: " + webhookSecret + "\n"
	for text, w := range map[string]want{
		// Listen addresses that are not host:port with a port number.
		"watch:\n  webhook_listen: 8089\n" + sec:          {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: \"host:\"\n" + sec:     {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: \"host:http\"\n" + sec: {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: \":0\"\n" + sec:        {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: \":65536\"\n" + sec:    {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: http://h:80/\n" + sec:  {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: \"\"\n" + sec:          {"watch.webhook_listen", 9, "is not a host:port to listen on"},
		"watch:\n  webhook_listen: [\":80\"]\n" + sec:     {"watch.webhook_listen", 9, "must be a string"},
		"watch:\n  webhook_listen:\n" + sec:               {"watch.webhook_listen", 9, "must be a string"},
		// The secret: required with listen, 16 characters at least, useless without it.
		"watch:\n  webhook_listen: :8089\n":                                             {"watch.webhook_secret", 0, "missing or shorter than 16 characters"},
		"watch:\n  webhook_listen: :8089\n  webhook_secret: short\n":                    {"watch.webhook_secret", 10, "missing or shorter than 16 characters"},
		"watch:\n  webhook_listen: :8089\n  webhook_secret: 123456789012345\n":          {"watch.webhook_secret", 10, "missing or shorter than 16 characters"},
		"watch:\n  webhook_listen: :8089\n  webhook_secret: 12\n  webhook_secret: 13\n": {"watch.webhook_secret", 11, "given twice"},
		"watch:\n" + sec:             {"watch.webhook_secret", 9, "only applies with watch.webhook_listen"},
		"watch:\n  webhook: :8089\n": {"watch.webhook", 9, "unknown key"},
	} {
		_, err := Parse("seafbak.yml", []byte(good+text))
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Key != w.key || cerr.Line != w.line || !strings.Contains(cerr.Msg, w.msg) {
			t.Errorf("%q: got %v, want %s at line %d: %s", text, err, w.key, w.line, w.msg)
		}
	}
}
