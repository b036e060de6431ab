package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"seafbak/config"
	"seafbak/internal/tlsutil"
	"seafbak/sync/store"
	"seafbak/watch"
	"seafbak/watch/notify"
)

type watchCmd struct {
	Poll *time.Duration `help:"How often the primary's library heads are listed (one query); default watch.poll of the config, 2s if unset." placeholder:"DURATION"`
}

// watchMetricsEvery is the least time between two rewrites of the metrics file while
// watch runs (a variable for tests). The file is rewritten after a poll round in which a
// sync finished (backed up, recorded a deletion, or failed), and on an idle server every
// 5 minutes, so that the libraries that did not change are counted current as of
// watch's last comparison of every head, as of a scan's (see watch.Watcher.AfterRound).
// Each rewrite reads every library's record (0.82 s for 10 000 libraries), so while
// libraries change all the time a rewrite a minute (about 1% of a core) is the bound;
// monitoring alerts after minutes, not seconds.
var watchMetricsEvery = watch.DefaultAfterRoundEvery

func (c *watchCmd) Run(e *env, cl *cli) (err error) {
	defer func() {
		// A signal is watch's normal stop at any point, while it starts too (its
		// primary's database slow to answer: systemd stopping a unit it restarts):
		// exit 0, or systemctl stop left the unit failed.
		var sig interrupt
		if err != nil && !errors.Is(err, store.ErrFlushFailed) && errors.As(context.Cause(e.ctx), &sig) {
			err = errStoppedAsAsked
		}
	}()
	poll := e.cfg.Watch.Poll
	if c.Poll != nil {
		poll = *c.Poll
		if poll < config.MinWatchPoll || poll > config.MaxWatchPoll {
			return usagef("--poll must be from %s to %s, not %s", config.MinWatchPoll, config.MaxWatchPoll, poll)
		}
	}
	w, err := wire(e, false)
	if err != nil {
		return cantRun(err)
	}
	defer w.closeAll()
	// A terminal's progress bar would be shared by every sync for as long as watch runs.
	w.engine.Progress = nil
	wt := &watch.Watcher{
		Engine: w.engine, Catalog: w.catalog, State: w.state, Log: e.log,
		Poll: poll, Parallel: e.cfg.Parallel, AfterRoundEvery: watchMetricsEvery,
	}
	// The run's figures so far; main writes the final ones when watch exits.
	figures := func() {
		c := wt.Copied()
		e.run.Bytes, e.run.Objects = c.Bytes, c.Objects
		e.run.Duration = time.Since(e.run.Start)
	}
	if path := cmp.Or(cl.MetricsFile, e.cfg.MetricsFile); path != "" {
		wt.AfterRound = func(_ context.Context, compared time.Time) {
			figures()
			// Exit code 0 while running: watch exits 0 whatever its syncs did; failing
			// libraries show as seafbak_library_failed.
			run := *e.run
			// Every library not failed held the primary's head as of compared, as of a
			// scan's start: without it a library that does not change looked behind
			// (SeafbakLibraryBehind) where no cron scan runs.
			run.ComparedAll, run.ComparedAt = !compared.IsZero(), compared
			if err := writeMetrics(path, e.cfg, &run); err != nil {
				e.log.Error("cannot rewrite the metrics file; trying again after the next sync", "err", err)
			}
		}
	}
	if listen := e.cfg.Watch.WebhookListen; listen != "" {
		stop, err := serveWebhook(listen, e.cfg.Watch.WebhookSecret, wt, e.log)
		if err != nil {
			return cantRun(err)
		}
		// Up until the running syncs are done: a webhook that finds nobody listening
		// counts as a connection error, which disables it in Seahub.
		defer stop()
	}
	if e.cfg.Primary.NotificationURL != "" {
		nc, err := notificationClient(e, w, wt)
		if err != nil {
			return cantRun(err)
		}
		nctx, stop := context.WithCancel(e.ctx)
		done := make(chan struct{})
		go func() { defer close(done); nc.Run(nctx) }()
		defer func() { stop(); <-done }()
	}
	err = wt.Run(e.ctx)
	figures()
	if errors.Is(err, store.ErrFlushFailed) {
		return failed(err)
	}
	if err != nil {
		return cantRun(err)
	}
	// Run returns nil only once ctx ended: SIGTERM or SIGINT, the normal stop.
	return errStoppedAsAsked
}

// notificationClient follows the notification server for wt: each repo-update event
// asks for a poll round now, each (re)connect for a full head check, and each listing
// subscribes new libraries. Tokens are minted with primary.jwt_private_key, or asked
// of the file server.
func notificationClient(e *env, w *wiring, wt *watch.Watcher) (*notify.Client, error) {
	p := e.cfg.Primary
	var tokens notify.Tokens
	if p.JWTPrivateKey != "" {
		tokens = notify.Minter{Key: []byte(p.JWTPrivateKey)}
	} else if f, ok := w.catalog.(notify.Fetcher); ok {
		tokens = notify.Fetched{Fetcher: f}
	} else {
		return nil, errors.New("primary.notification_url needs primary.jwt_private_key, or primary.url to ask the file server for tokens")
	}
	tlsConf, err := tlsutil.PrivateCA(p.CAFile)
	if err != nil {
		return nil, fmt.Errorf("primary %w", err)
	}
	nc := &notify.Client{
		URL: p.NotificationURL, Tokens: tokens, TLS: tlsConf, Log: e.log.With("signal", "notification server"),
		Changed: wt.Check, Connected: wt.CheckAll,
	}
	if _, err := notify.WebsocketURL(p.NotificationURL); err != nil {
		return nil, err
	}
	wt.Listed = nc.SetLibraries
	return nc, nil
}

// serveWebhook listens on listen for Seafile 14's webhooks, each asking wt to poll now,
// and returns the function that shuts the server down (waiting at most a few seconds
// for requests in flight, which never wait for a sync).
func serveWebhook(listen, secret string, wt *watch.Watcher, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("watch.webhook_listen: %w", err)
	}
	srv := &http.Server{
		Handler:           &watch.Webhook{Secret: []byte(secret), Trigger: wt.Check, Log: log},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("the webhook receiver stopped; polling goes on", "listen", listen, "err", err)
		}
	}()
	log.Info("receiving Seafile webhooks", "listen", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}
