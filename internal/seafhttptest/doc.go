// Package seafhttptest is a protocol-faithful test stand-in for the HTTP
// sync protocol of Seafile's Go file server (haiwen/seafile-server,
// fileserver/: sync_api.go, fileserver.go, repomgr, share, fsmgr, diff,
// objstore). It serves a real seafile-data directory (filesystem backend:
// storage/{commits,fs,blocks}/<store>/<id[:2]>/<id[2:]>) and reads a real
// seafile database (Seafile's MySQL schema), answering download requests
// with the real server's routes, status codes, bodies and byte formats, and
// it can misbehave on request so clients can be tested against failures.
//
//	srv := seafhttptest.New(dataDir, db, seafhttptest.Options{Prefix: "/seafhttp"})
//	base, err := srv.Start() // http://127.0.0.1:PORT/seafhttp
//	defer srv.Close()
//	srv.ResetBlocks(2, 4096)             // next 2 block bodies cut after 4 KiB
//	... run the client ...
//	n := srv.Requests(seafhttptest.RoutePackFS)
//
// # Routes and answers
//
// Paths are relative to the base URL (Options.Prefix, "" for the root as on
// the file server's own port). Repository ids in paths must match
// [\da-z]{8}-[\da-z]{4}-[\da-z]{4}-[\da-z]{4}-[\da-z]{12} and object ids
// [\da-z]{40} (the file server's gorilla/mux patterns); a path that matches
// no route gets mux's 404 "404 page not found". Paths with //, /./ or /../
// get mux's 301 to the cleaned path. Error answers are the file server's
// http.Error(w, msg, code): text/plain, body msg+"\n" (just "\n" when the
// server gives no message). Where not said otherwise a route accepts any
// method.
//
//   - GET /protocol-version[/]: 200 {"version": 2}.
//   - POST /repo/head-commits-multi[/]: no token. Body: JSON list of library
//     ids. Undecodable, empty, or an id failing the file server's lax UUID
//     check (google/uuid v1.1.1 Parse: also upper case, 32 hex digits,
//     urn:uuid:, any 38-character {...}): 400. Answer: compact JSON object
//     (sorted keys) mapping each id with a master branch (Branch table;
//     the Repo table is not consulted) to its head; others are absent. The
//     ids are compared by the database (case-insensitive collation), and
//     the answer carries the stored id.
//   - GET /repo/<repo>/commit/HEAD[/]: first SELECT EXISTS on Repo: no row is
//     444, even without a token; a database error is 200
//     {"is_corrupted": 1}. Then the token only (no permission check). No
//     master branch: 400. Answer: {"is_corrupted": 0, "head_commit_id":
//     "<id>"}. Methods other than GET and PUT: 400; PUT (branch update):
//     501 here.
//   - GET /repo/<repo>/commit/<id>: token, read permission, then the raw
//     stored bytes from the library's OWN commit store (also for a virtual
//     library), with Content-Length; missing: 404. No check that the
//     library exists. Other methods than GET/PUT: 400; PUT: 501 here.
//   - GET /repo/<repo>/fs-id-list[/]?server-head=&client-head=&dir-only=:
//     server-head (required) and client-head (optional) must be 40
//     lower-case hex digits, else 400 "Invalid server-head parameter." /
//     "Invalid client-head parameter." — checked BEFORE the token. Then
//     token, read permission, and the library as repomgr.Get loads it
//     (Repo row, master branch, head commit object loadable and valid):
//     otherwise 500. Any failure of the tree diff (unknown server-head or
//     client-head commit, missing or unparsable dir object) is 500 with an
//     empty message. Answer: a compact JSON list ("[]" when empty) computed
//     as calculateSendObjectList does: the server root unless it equals the
//     client root or is empty, then a two-tree walk in stored (descending
//     name) order skipping entries whose id, mode and mtime agree, per name
//     the file id (unless dir-only) and then the directory id before its
//     contents, listing ids of the server side that differ from the client
//     side's entry OF THE SAME PATH and are not the empty id. It is a diff
//     by path: a renamed or copied object is listed again, duplicates are
//     kept. Any non-empty dir-only value, even "0", means dir-only. At most
//     10 computations run at once (Options.FSIDListWorkers).
//   - POST /repo/<repo>/pack-fs[/]: token, read permission, store id, then
//     the body, a JSON list of fs ids (undecodable: 400 with the JSON
//     decoder's message, e.g. "EOF"). For each id in order: not 40
//     lower-case hex: 400 "Invalid fs id <id>"; not readable (missing, or
//     the empty id, which is never stored): 500 for the whole request;
//     else a record of the 40 ascii id bytes, the 4-byte big-endian length
//     and the object exactly as stored (zlib). The server stops after the
//     object that brings the sum of OBJECT bytes (record headers not
//     counted) to >= 1 MiB (Options.MaxPackSize), so the answer holds
//     slightly more than 1 MiB and ids after that point are neither read
//     nor validated. Answer with Content-Length; an empty list gives an
//     empty 200.
//   - POST /repo/<repo>/check-fs[/] and /check-blocks[/]: token, READ
//     permission, store id, body as for pack-fs. Answer: JSON list of the
//     ids the server does not have ("[]" when none); ids that are not valid
//     are skipped, not refused; the empty id counts as a present fs object
//     but as a missing block.
//   - GET /repo/<repo>/block/<id>: token, read permission, store id; a
//     block that cannot be stat'ed (missing, or the id is [\da-z]{40} but
//     not hex) or has size 0 is 500, not 404. Answer: the stored bytes,
//     Content-Length = stat'ed size. Other methods than GET/PUT: 400; PUT:
//     501 here.
//   - GET /repo/<repo>/permission-check[/]?op=download|upload[&client_id=
//     &client_ver=&client_name=]: op missing/other: 400 "op is invalid";
//     client_id not 40 characters: 400 "client_id is invalid"; client_ver
//     not three dot-separated integers: 400 "client_ver is invalid". Then
//     the library as repomgr.GetEx loads it: no Repo row with a master
//     branch: 444 "repo was deleted"; corrupted: 445 "repo was corrupted".
//     Then token and permission, both bypassing (and refreshing) the
//     caches; upload also needs RepoInfo.status normal (the origin's for a
//     virtual library) and "rw". 200 with an empty body.
//   - GET /repo/<repo>/jwt-token[/]: 404 with an empty body unless
//     Options.NotificationURL and JWTKey are set (the file server's
//     ENABLE_NOTIFICATION_SERVER); then the token only (no permission
//     check), and 200 {"jwt_token":"<HS256 jwt>"} with claims exp (72 h),
//     repo_id and username (the token's user). BranchUpdated posts the
//     file server's repo-update event to the notification server.
//   - recv-fs, quota-check, block-map, accessible-repos and the
//     PUT methods exist on the real server but not here: 501 "not
//     implemented by seafhttptest". The web routes (/files/, /zip/, ...)
//     are 404.
//
// 445 (corrupted): the real server answers it only in permission-check,
// when repomgr.GetEx flags the library: the Repo/Branch/VirtualRepo query
// fails, the master head is NULL or empty, or the head commit object is
// missing or does not parse/validate (repo id UUID, root id, 40-character
// creator, parent ids). This stand-in does the same. commit/HEAD never
// answers 445 (a database error there is 200 {"is_corrupted": 1}), and
// fs-id-list answers a corrupted library with 500.
//
// # Tokens and permissions (validateToken, checkPermission, share.CheckPerm)
//
// The token is the Seafile-Repo-Token header, else the second
// space-separated word of Authorization (any scheme: "Token t" and
// "Bearer t" both give t). None: 400 "token is null". It is looked up in
// RepoUserToken for (this repo, token): no row: 403 "Failed to get email by
// token <token>"; database error: 500. The email then needs a permission;
// none: 403 with an empty message. Permission of a user on a library:
//
//   - RepoOwner.owner_id equal to the email (exact Go string comparison):
//     "rw". OrgRepo is NOT read: the owner of an organisation library has
//     no permission from that alone.
//   - else SharedRepo (repo, to_email) — compared by the database,
//     case-insensitively — else the best RepoGroup permission of the user's
//     groups (ccnet `Group` and GroupUser, needs Options.CcnetDB; group rows
//     that do not scan, e.g. a NULL parent_group_id, are ignored), else,
//     unless Options.CloudMode, InnerPubRepo.
//   - For a virtual library (VirtualRepo row): the ORIGIN's owner has "rw";
//     else a folder share to the user (SharedRepo on a virtual library of
//     the same origin) whose path is the virtual library's path or a parent
//     of it; else the same through the user's groups (RepoGroup); else the
//     user's permission on the origin. The virtual library's own RepoOwner
//     row is not consulted. Its fs objects and blocks are read from the
//     origin's store, its commits from its own.
//
// Caches: the real server caches token lookups (keyed by the token ALONE,
// so a cached token shown for another library is 403 "Invalid token"),
// permission grants (per repo, user and operation) and virtual-library store
// ids for 7200 s from when they were stored (store ids: from last use), a
// sweeper dropping expired entries every 300 s. Here Options.CacheTTL
// (default 0 = no caching) sets the life, enforced exactly; SetCacheTTL and
// ClearCaches adjust it while running. A failed token lookup evicts the
// token; permission-check always reads the database and re-caches.
//
// # Misbehaviour knobs
//
// All knobs are safe for concurrent use and can be changed while serving;
// counted ones ("next n") replace earlier settings for the same route,
// n <= 0 cancels, a route-specific setting wins over RouteAny, ClearKnobs
// drops all. They apply to the routes above (not to 404s, 501s or
// redirects). Order per request: count it, delay, connection drop, forced
// failure, then the real handler, whose 200 body may be stalled, cut,
// truncated or corrupted.
//
//   - SetDelay(d) / SetRouteDelay(route, d): wait d before handling each
//     request (slow server).
//   - FailNext(route, n) / FailNextStatus(route, n, status): the next n
//     requests answer 500 (or status) with body "\n", before any check.
//   - ResetNext(route, n) / CloseNext(route, n): the next n requests get no
//     response; the connection is reset (RST) or closed (FIN). Note Go's
//     http.Transport silently retries an idempotent request (GET) once when
//     a reused connection dies before any response byte.
//   - Stall(route, n, afterBytes, d) / StallBlocks(n, afterBytes, d): the
//     next n 200 answers with a body send headers and afterBytes bytes,
//     then pause d (read timeouts), then the rest.
//   - ResetAfter(route, n, afterBytes) / ResetBlocks(n, afterBytes): the
//     next n 200 answers with a body send headers and afterBytes bytes, then
//     the TCP connection is reset (SO_LINGER 0). CloseAfter does an orderly
//     close instead (the client sees io.ErrUnexpectedEOF). For stalls and
//     cuts afterBytes is clamped so the last body byte is always withheld;
//     error answers and empty bodies do not use up the knob.
//   - TruncatePacks(n): the next n pack-fs answers holding at least one
//     record end halfway through the last record's object bytes, with a
//     matching Content-Length (a framing error, not a transport error).
//   - CorruptObject(id, content) / RestoreObject(id): serve content (nil:
//     the stored bytes with the last byte inverted) instead of the stored
//     bytes of that block, fs object (pack-fs record, with its length) or
//     commit, when it exists. The server's own reads (fs-id-list's walk,
//     head checks) still see the stored bytes.
//   - Requests(route) / ResetRequests: per-route request counters (every
//     request routed to it, however answered); RouteAny is the total,
//     RouteNotFound and RouteNotImplemented count the rest.
//
// Connection-level knobs hijack the HTTP/1.1 connection; for this,
// StartTLS serves HTTP/1.1 only (no HTTP/2). Under a server where hijacking
// is impossible they panic with http.ErrAbortHandler instead.
//
// # Deliberate differences from the real server
//
//   - Only the download side is served; nothing is ever written to the
//     database or the data directory. In particular permission-check with
//     client_id and client_name does not record RepoTokenPeerInfo, and no
//     events or statistics are published.
//   - Directory objects are not cached (the real server keeps parsed dirs
//     for an hour), so on-disk changes show at once in fs-id-list.
//   - fs_id_list_request_timeout (off by default in the real server) is
//     not implemented; a client that hangs up cancels the computation (500
//     in both).
//   - Behind a proxy a real deployment may add its own answers (nginx 502,
//     413, ...); use FailNextStatus for those.
package seafhttptest
