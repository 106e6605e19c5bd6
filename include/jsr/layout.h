/* The store layout: every name nats-server and js-recover give the files and
 * directories of a store, defined here once.  docs/FORMAT.md ("Store
 * layout") says what each holds and what was measured about it; Lua sees
 * the same names as jsr.layout (src/lua_layout.c, SCRIPTING.md).
 *
 *   <store_dir>/jetstream/                          JSR_JS_DIR
 *     <ACCOUNT>/streams/<STREAM>/                   JSR_STREAMS_DIR
 *       meta.inf, meta.sum, meta.key                JSR_META_INF, _SUM, _KEY
 *       msgs/N.blk, N.idx, N.fss, N.key, index.db   JSR_MSGS_DIR, JSR_*_EXT, JSR_INDEX_DB
 *       obs/<CONSUMER>/meta.inf, meta.sum, [meta.key], o.dat
 *                                                   JSR_CONSUMERS_DIR, JSR_CONSUMER_STATE
 *     <SYSTEM ACCOUNT>/_js_/<GROUP>/                JSR_RAFT_DIR
 *       _meta_ (the meta group), S-... (streams),   JSR_META_GROUP, JSR_*_GROUP_PREFIX
 *       C-... (consumers); in each: msgs/ (the log), snapshots/snap.T.I,
 *       peers.idx, tav.idx                          JSR_RAFT_SNAPSHOTS, _PEERS, _TAV
 *   <store_dir>/.js-recover/                        JSR_STATE_DIR (js-recover's own, undo.h)
 *     journal/<tx>.json, .json.tmp, .committed, .purging, .undoing
 *     backup/<tx>/<i>, removed/<tx>/<i>-<name>
 *   <store_dir>/recovery.conf, recovery-report.json (what prepare writes)
 *
 * The system account is found by its _js_ directory, not by name ($SYS, or
 * what `system_account` names: measured, docs/FORMAT.md). */
#ifndef JSR_LAYOUT_H
#define JSR_LAYOUT_H

#include <string.h>

/* ---- nats-server's */
#define JSR_JS_DIR "jetstream"       /* under store_dir */
#define JSR_STREAMS_DIR "streams"    /* under an account */
#define JSR_RAFT_DIR "_js_"          /* under the system account: the Raft groups */
#define JSR_META_GROUP "_meta_"      /* the meta group's directory under _js_ */
#define JSR_STREAM_GROUP_PREFIX "S-" /* S-R<n>F-xxxx */
#define JSR_CONSUMER_GROUP_PREFIX "C-"
#define JSR_MSGS_DIR "msgs"       /* a stream's blocks; a Raft group's log */
#define JSR_CONSUMERS_DIR "obs"   /* under a stream */
#define JSR_META_INF "meta.inf"   /* config of a stream, consumer or Raft group */
#define JSR_META_SUM "meta.sum"   /* its checksum */
#define JSR_META_KEY "meta.key"   /* its key, when encrypted */
#define JSR_CONSUMER_STATE "o.dat"
#define JSR_INDEX_DB "index.db"   /* 2.10+, under msgs/ */
#define JSR_BLK_EXT "blk"         /* msgs/N.blk, a message block */
#define JSR_IDX_EXT "idx"         /* msgs/N.idx, its index (before 2.10) */
#define JSR_FSS_EXT "fss"         /* msgs/N.fss, its per-subject state (before 2.10) */
#define JSR_KEY_EXT "key"         /* msgs/N.key, its key, when encrypted */
#define JSR_RAFT_SNAPSHOTS "snapshots" /* snapshots/snap.<term>.<index> */
#define JSR_RAFT_SNAPSHOT_PREFIX "snap."
#define JSR_RAFT_PEERS "peers.idx"
#define JSR_RAFT_TAV "tav.idx"    /* term and vote */

/* ---- js-recover's (undo.h says what each journal file means) */
#define JSR_STATE_DIR ".js-recover"
#define JSR_JOURNAL_DIR JSR_STATE_DIR "/journal"
#define JSR_BACKUP_DIR JSR_STATE_DIR "/backup"
#define JSR_REMOVED_DIR JSR_STATE_DIR "/removed"
#define JSR_JOURNAL_EXT ".json"          /* journal/<tx>.json: what the commit does */
#define JSR_JOURNAL_TMP_EXT ".json.tmp"  /* ... while it is written */
#define JSR_COMMITTED_EXT ".committed"
#define JSR_PURGING_EXT ".purging"
#define JSR_UNDOING_EXT ".undoing"
#define JSR_TMP_SUFFIX ".jsr-tmp"        /* a replacement next to its file */
#define JSR_REPORT "recovery-report.json"
#define JSR_CONFIG "recovery.conf"

/* What a directory under _js_ holds, by its name: "meta", "stream",
 * "consumer" or "unknown". */
static inline const char *jsr_raft_group_kind(const char *name)
{
    return !strcmp(name, JSR_META_GROUP) ? "meta"
           : !strncmp(name, JSR_STREAM_GROUP_PREFIX, sizeof JSR_STREAM_GROUP_PREFIX - 1) ? "stream"
           : !strncmp(name, JSR_CONSUMER_GROUP_PREFIX, sizeof JSR_CONSUMER_GROUP_PREFIX - 1) ? "consumer"
                                                          : "unknown";
}

#endif
