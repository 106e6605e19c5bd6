-- The exact JSON codec behind read_meta/write_meta.
local json = require("jsr").json

describe("jsr.json", function()
  it("keeps integers at the int64 edges exact", function()
    local v = json.decode('{"a":9223372036854775807,"b":-9223372036854775808,"c":604800000000000}')
    assert.are.equal(math.maxinteger, v.a)
    assert.are.equal(math.mininteger, v.b)
    assert.are.equal(604800000000000, v.c)
    assert.is_true(math.type(v.c) == "integer")
    assert.are.equal('{"a":9223372036854775807,"b":-9223372036854775808,"c":604800000000000}',
      json.encode(v))
  end)

  it("keeps uint64 values beyond int64 as exact text", function()
    local v = json.decode('{"first_seq":18446744073709551615,"x":18446744073709551000}')
    assert.are.equal("18446744073709551615", tostring(v.first_seq))
    assert.are.equal('{"first_seq":18446744073709551615,"x":18446744073709551000}', json.encode(v))
  end)

  it("keeps non-integer numbers as written", function()
    local text = '{"f":1.50,"e":1e3,"n":-0.0}'
    assert.are.equal(text, json.encode(json.decode(text)))
  end)

  it("keeps key order and case-distinct keys apart", function()
    local text = '{"Created":"x","Name":"c1","durable_name":"c1","name":"c1","z":1,"a":2}'
    local v = json.decode(text)
    assert.are.equal("c1", v.Name)
    assert.are.equal("c1", v.name)
    assert.are.same({ "Created", "Name", "durable_name", "name", "z", "a" }, json.keys(v))
    assert.are.equal(text, json.encode(v))
  end)

  it("drops a key set to nil and sorts added keys after the known ones", function()
    local v = json.decode('{"b":1,"placement":{"cluster":"east"},"a":2}')
    v.placement = nil
    v.zz, v.aa = true, false
    assert.are.equal('{"b":1,"a":2,"aa":false,"zz":true}', json.encode(v))
  end)

  it("escapes as Go does: <>& U+2028/9 and control bytes", function()
    assert.are.equal([["a\u003cb\u003e\u0026\u2028\u2029\n\t\u0001\"\\"]],
      json.encode("a<b>&\u{2028}\u{2029}\n\t\1\"\\"))
    assert.are.equal('"caf\xc3\xa9"', json.encode("café"))
  end)

  it("re-encodes a string with non-Go escapes byte for byte while unchanged", function()
    local text = '{"note":"caf\\u00e9 \\u2028 line","other":"\\u003e"}'
    local v = json.decode(text)
    assert.are.equal("café \u{2028} line", v.note)
    assert.are.equal(text, json.encode(v))
    v.note = "changed <"
    assert.are.equal('{"note":"changed \\u003c","other":"\\u003e"}', json.encode(v))
  end)

  it("keeps empty objects and arrays apart", function()
    local text = '{"consumer_limits":{},"subjects":[],"x":[1,2]}'
    assert.are.equal(text, json.encode(json.decode(text)))
    assert.are.equal("[]", json.encode(json.array()))
    assert.are.equal("{}", json.encode(json.object()))
  end)

  it("represents null with a sentinel that encodes back", function()
    local v = json.decode('{"a":null}')
    assert.are.equal(json.null, v.a)
    assert.are.equal('{"a":null}', json.encode(v))
  end)

  it("decodes surrogate pairs and lone surrogates as Go does", function()
    assert.are.equal("\u{1F600}", json.decode('"\\ud83d\\ude00"'))
    assert.are.equal("\u{FFFD}", json.decode('"\\ud83d"'))
  end)

  local bad = {
    { "", "unexpected end" },
    { "{", "expected a string key" },
    { '{"a":1,"a":2}', "duplicate key \"a\"" },
    { '{"a":1} x', "unexpected data after" },
    { '"\xff"', "invalid UTF-8" },
    { '"a\nb"', "control character" },
    { "01", "unexpected data" },
    { "[1,]", "unexpected character" },
    { '{"a":tru}', "invalid literal" },
    { '"\\x"', "invalid escape" },
    { string.rep("[", 300) .. string.rep("]", 300), "nesting deeper than" },
  }
  for _, case in ipairs(bad) do
    it(("refuses %q with a message and a byte offset"):format(case[1]:sub(1, 20)), function()
      local v, err = json.decode(case[1])
      assert.is_nil(v)
      assert.matches(case[2], err, 1, true)
      assert.matches("at byte %d+", err)
    end)
  end

  it("refuses to write a fraction where Go expects an int64", function()
    local v, err = json.encode({ max_age = 1.5 })
    assert.is_nil(v)
    assert.matches("not an integer", err)
    assert.are.equal('{"max_age":604800000000000}', json.encode({ max_age = 6.048e14 }))
  end)

  it("builds exact numbers from text and rejects what is not a number", function()
    assert.are.equal("[18446744073709551615]", json.encode({ json.number("18446744073709551615") }))
    assert.has_error(function() json.number("12abc") end)
  end)

  it("writes indented JSON for people, with the same values and order", function()
    local v = json.decode('{"b":1,"a":[1,{"x":18446744073709551615}],"e":{},"f":[],"s":"\\u00e9"}')
    local want = table.concat({
      '{',
      '  "b": 1,',
      '  "a": [',
      '    1,',
      '    {',
      '      "x": 18446744073709551615',
      '    }',
      '  ],',
      '  "e": {},',
      '  "f": [],',
      '  "s": "\\u00e9"',
      '}' }, "\n")
    assert.are.equal(want, json.encode(v, { pretty = true }))
    assert.are.same(json.decode(json.encode(v)), json.decode(json.encode(v, { pretty = true })))
  end)

  it("gives each top-level field encoded, in the order encode writes them", function()
    local v = json.decode('{"name":"S","num_replicas":3,"placement":{"tags":["a"]}}')
    v.num_replicas = 1
    v.added = true
    local keys, texts = json.fields(v)
    assert.are.same({ "name", "num_replicas", "placement", "added" }, { table.unpack(keys) })
    assert.are.same({ name = '"S"', num_replicas = "1", placement = '{"tags":["a"]}', added = "true" }, texts)
    assert.has_error(function() json.fields({ x = 0.5 }) end)
  end)
end)
