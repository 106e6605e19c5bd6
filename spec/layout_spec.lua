-- jsr.layout: layout.h's names and the paths built of them (SCRIPTING.md).
local layout = require("jsr").layout

describe("jsr.layout", function()
  it("names what nats-server and js-recover call the store's files", function()
    -- the spellings docs/FORMAT.md "Store layout" measured; a change here is a
    -- change of every store js-recover reads
    local want = { JS_DIR = "jetstream", STREAMS_DIR = "streams", RAFT_DIR = "_js_", META_GROUP = "_meta_",
      MSGS_DIR = "msgs", CONSUMERS_DIR = "obs", META_INF = "meta.inf", META_SUM = "meta.sum",
      META_KEY = "meta.key", CONSUMER_STATE = "o.dat", INDEX_DB = "index.db", BLK_EXT = "blk",
      IDX_EXT = "idx", FSS_EXT = "fss", KEY_EXT = "key", RAFT_SNAPSHOTS = "snapshots",
      RAFT_PEERS = "peers.idx", RAFT_TAV = "tav.idx", STATE_DIR = ".js-recover",
      JOURNAL_DIR = ".js-recover/journal", BACKUP_DIR = ".js-recover/backup",
      REMOVED_DIR = ".js-recover/removed", REPORT = "recovery-report.json", CONFIG = "recovery.conf" }
    for k, v in pairs(want) do assert.are.equal(v, layout[k], k) end
  end)

  it("builds a store's paths from a directory, or relative to it from \"\"", function()
    assert.are.equal("/s/jetstream/ACME/streams/ORDERS", layout.stream_dir("/s/jetstream", "ACME", "ORDERS"))
    assert.are.equal("/d/obs/C1/o.dat", layout.consumer_state(layout.consumer_dir("/d", "C1")))
    assert.are.equal("/d/msgs/index.db", layout.index_db("/d"))
    assert.are.equal("msgs/index.db", layout.index_db(""))
    assert.are.equal("obs/C1/meta.inf", layout.meta_inf(layout.consumer_dir("", "C1")))
    assert.are.equal("/d/msgs/7.blk", layout.block("/d", 7))
    assert.are.equal("msgs/7.key", layout.block("", 7, "key"))
    assert.are.equal("/d/msgs/7.idx", layout.block_file("/d/msgs/7.blk", "idx"))
    assert.are.equal("/s/.js-recover/journal", layout.journal_dir("/s"))
    assert.are.equal("/a/_js_/_meta_", layout.meta_group("/a"))
    assert.are.equal("/a/_js_", layout.raft_dir_of("/a/_js_/_meta_"))
  end)

  it("reads block and snapshot file names", function()
    assert.are.equal(12, layout.block_index("12.blk"))
    assert.are.equal(12, layout.block_index("12.idx", "idx"))
    assert.is_nil(layout.block_index("12.idx"))
    assert.is_nil(layout.block_index("x.blk"))
    assert.is_nil(layout.block_index("99999999999.blk")) -- past a block index (u32)
    local t, i = layout.snapshot_of("snap.3.1024")
    assert.are.equal(3, t)
    assert.are.equal(1024, i)
    assert.is_nil(layout.snapshot_of("snap.3"))
    assert.is_nil(layout.snapshot_of("snap.3.1024.tmp"))
    assert.are.equal("meta", layout.group_kind("_meta_"))
    assert.are.equal("stream", layout.group_kind("S-R3F-abc"))
    assert.are.equal("consumer", layout.group_kind("C-R3F-abc"))
    assert.are.equal("unknown", layout.group_kind("X"))
  end)

  it("raises for a wrong argument", function()
    assert.has_error(function() layout.index_db() end)
    assert.has_error(function() layout.block_file("/d/msgs/7.idx", "fss") end)
    assert.has_error(function() layout.block("/d", 1, ".blk") end)
    assert.has_error(function() layout.block("/d", -1) end)
    assert.has_error(function() layout.raft_dir_of("_meta_") end)
  end)
end)
