"""Routing rules: an operator's Lua script decides where a new conversation goes, run in a sandbox.

The script defines a global function ``route(visitor)``. ``visitor`` is a read-only table (``channel``, ``vip``,
``language``, ``sentiment``, ``tenant``, ``history`` and whatever string attributes the router adds); ``route``
returns nil (default routing) or a table with any of ``group``, ``agent``, ``priority``, ``skills`` and ``note``.

Theory of operation
-------------------
Each `RuleEngine` owns one Lua 5.4 runtime (lupa) with a memory cap, in which trusted set-up code (`_SANDBOX_LUA`)
runs first, with the full standard library, and keeps what it needs in local variables: ``debug.sethook``,
``debug.setupvalue``, ``load`` and a wall clock (Python's ``time.monotonic``). It compiles the operator's source
once, as text only (``load(source, name, "t", env)``: no bytecode). An evaluation then:

1. converts the visitor into plain Lua tables (Python values only: str, int, float, bool, lists and mappings,
   bounded in depth and size; no Python object ever reaches Lua) and wraps each table in a read-only proxy;
2. makes a fresh, empty environment table and points the chunk's ``_ENV`` upvalue at it. Reading a name missing
   from it falls through (metatable ``__index``) to a whitelist: the base functions routing needs, and per
   evaluation *copies* of ``string``, ``math``, ``table`` and ``utf8``, so nothing a script writes survives
   the evaluation. Names on the forbidden list (``os``, ``io``, ``require``, ``load``, ``debug``, ``python``...,
   and ``string.dump``, ``math.randomseed``) raise an error and mark the evaluation "forbidden", which no
   ``pcall`` can undo. The script never sees ``_G``, the registry, the string metatable or a metatable at all;
3. arms a count hook every `HOOK_STEP` instructions, runs the chunk (which defines ``route``) and ``route``,
   checks the result field by field, disarms the hook, and hands back only strings and numbers.

Bounds. *Instructions*: the hook adds `HOOK_STEP` to a counter and stops the script past the limit. *Time*: the same
hook reads the wall clock and stops the script past the deadline. Once stopped, the hook is re-armed to fire on
every instruction and raise again, so a script that catches the error with ``pcall`` dies on its next
instruction; `evaluate` also reads the fault flag after the call, whatever the call returned. *Memory*: lupa's
allocator refuses past ``max_memory``, which Lua raises as a memory error (a growing table, a string doubled in a
loop, runaway recursion; a ``string.rep`` bomb is usually stopped earlier by its charge, below).

Work inside one C call is invisible to the count hook, and some of the standard library is unbounded there:
``string.rep("", 1e15)`` and ``table.move({}, 1, 1e15, 1, {})`` loop for days, and backtracking patterns are
exponential (``("a"):rep(50):find(("a?"):rep(50) .. ("a"):rep(50))``, the classic from the IronBox sandbox's
README). So every library function a script can call is a wrapper that charges its work to the instruction
counter *before* calling (bytes of string arguments at `UNIT_BYTES` per unit, elements moved, ``rep`` counts)
and reads the clock after; pattern functions also refuse a pattern whose worst-case cost on this subject,
``(n + 1) ^ repetitions * 2 ^ optionals``, exceeds `MAX_PATTERN_STEPS`. What remains is a single VM instruction
over a string near the memory cap (here, on 7 MB: ``s + 1`` coercing digits 2.5 ms, ``s .. "x"`` 1.4 ms, ``s < t``
0.3 ms), which the hook bounds to `HOOK_STEP` instructions' worth: a loop of such instructions overruns the
deadline by at most ~80 ms.

Runtime reuse, measured (``python -m bench.bench_service``, this 2-vCPU VM, CPython 3.11, lupa 2.8, medians of 7
runs, two runs): a fresh ``LuaRuntime`` with the sandbox set up and the rule compiled for every evaluation costs
219-225 us for a trivial rule and 246-249 us for a typical one; reusing the engine's runtime costs 9.2-9.3 us and
13.2-13.6 us (visitor conversion, fresh environment, hook, result check included), and ``await evaluate_async``
50 us (the thread hop).
The runtime is reused. That is safe because nothing a script can reach outlives an evaluation: the environment,
the library copies and the visitor tables are new each time; the shared pieces (the wrapped library functions, the
string metatable's method table, the compiled chunk, whose ``_ENV`` is repointed) are unreachable or immutable from
the script; and ``math.randomseed`` is withheld, so one evaluation cannot steer the next one's random numbers.
After a memory error the runtime is rebuilt anyway (rare, and it drops the garbage at once).

`evaluate_async` runs `evaluate` in the engine's own single-thread executor: lupa releases the GIL while Lua runs,
so the event loop keeps going; it is also bounded by ``asyncio.timeout(seconds + ASYNC_GRACE)`` as a last resort.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

from lupa import lua54

Reason = Literal["compile", "forbidden", "instructions", "memory", "timeout", "error", "bad_result"]

HOOK_STEP = 100
"""The count hook fires every 100 VM instructions. Any count hook makes every instruction take Lua 5.4's slow path,
whatever its period; a tick adds a Python clock read (~0.1 us). A 200,000-iteration loop takes 0.6 ms without a
hook, 1.25 ms with a tick every 1,000 instructions and 2.0 ms every 100; a typical rule runs a few hundred
instructions, so the short period costs it nothing measurable and bounds the overshoot past the deadline to 100
instructions (see the module docstring)."""
UNIT_BYTES = 4
"""Bytes of string a library call is charged one instruction for. A VM instruction takes ~3.5 ns with the hook on;
the slowest per-byte loops of the library (``upper``, ``utf8.len``) take ~0.6-0.8 ns per byte, memcpy far less."""
MAX_PATTERN_STEPS = 1e7
"""Worst-case backtracking steps allowed to one pattern call (~18 ms at the ~1.8 ns per step measured here). Enough
for rules on visitor fields: ``page:match("/orders/(%d+)")`` passes up to 3,161-byte subjects, and the trim
``^%s*(.-)%s*$`` up to 214 bytes."""
ASYNC_GRACE = 0.1
"""Seconds `evaluate_async` waits beyond the rule's own deadline before giving up on the worker thread: the
in-Lua overshoot (above), plus waits for the GIL and for rules queued ahead in the executor."""

MAX_SOURCE_BYTES = 256 << 10
"""A routing rule is a page of Lua; 256 KiB also covers a generated lookup table."""
MAX_VISITOR_DEPTH = 4
"""Nesting of visitor tables: visitor -> history -> a list -> its items."""
MAX_VISITOR_VALUES = 512
"""Values (tables included) in one visitor: a few dozen fields plus tag lists; with `MAX_VISITOR_STRING` this
keeps the converted visitor under ~2 MB of the rule's memory."""
MAX_VISITOR_STRING = 1024
"""Characters per visitor string: a user agent or page URL fits."""
MAX_NAME_BYTES = 128
"""Bytes of a group or agent name returned by a rule (the directory's own limit is lower)."""
MAX_SKILLS = 32
"""Skills a rule may require of an agent."""
MAX_SKILL_BYTES = 64
"""Bytes of one skill name."""
MAX_NOTE_CHARS = 200
"""Characters of the note shown in the routing trace; longer notes are cut."""
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000
"""Priorities are clamped into this range, so no rule can starve every other queue."""
MAX_ERROR_CHARS = 300
"""Characters of a Lua error message kept in a `RuleError`."""

FORBIDDEN = [
    "os",
    "io",
    "require",
    "package",
    "load",
    "loadfile",
    "dofile",
    "loadstring",
    "debug",
    "collectgarbage",
    "rawset",
    "rawget",
    "rawequal",
    "rawlen",
    "setmetatable",
    "getmetatable",
    "coroutine",
    "print",
    "xpcall",
    "python",
    "_G",
]
"""Globals a rule may not touch: reading one stops the evaluation with reason "forbidden"."""


@dataclass(frozen=True, slots=True)
class RuleLimits:
    """Per-evaluation bounds."""

    instructions: int = 1_000_000
    """Lua VM instructions, counted in steps of `HOOK_STEP` (the hook's own ~10 instructions per step included),
    plus the work charged by library calls."""
    memory_bytes: int = 16 << 20
    """The runtime's memory cap (``LuaRuntime(max_memory=...)``), shared by the rule, its data and the sandbox."""
    seconds: float = 0.05
    """Wall-clock time per evaluation, checked from the count hook and after library calls."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the rule sends the conversation. None fields fall back to default routing."""

    group: str | None = None
    agent: str | None = None
    priority: int = 0
    """Higher first, clamped to `PRIORITY_MIN`..`PRIORITY_MAX`."""
    skills: tuple[str, ...] = ()
    note: str = ""
    """Shown in the routing trace; at most `MAX_NOTE_CHARS` characters."""


class RuleError(Exception):
    """The rule failed; `reason` says how. The router then uses default routing and logs the message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason
        self.message = message


# The trusted half of the sandbox. Arguments: the clock, the rule's source and chunk name, the forbidden names,
# and the constants above. Returns run, state, sethook; or nil and the compile error.
_SANDBOX_LUA = r"""
local clock, source, chunkname, forbidden_list, K = ...
local assert, error, ipairs, next, pairs, pcall, select = assert, error, ipairs, next, pairs, pcall, select
local rawget, rawlen, rawset, setmetatable, getmetatable = rawget, rawlen, rawset, setmetatable, getmetatable
local tonumber, tostring, type, load = tonumber, tostring, type, load
local sethook, setupvalue, dgetmetatable = debug.sethook, debug.setupvalue, debug.getmetatable
local floor, tointeger, log = math.floor, math.tointeger, math.log
local byte, sub, find, match, gmatch, gsub, rep =
  string.byte, string.sub, string.find, string.match, string.gmatch, string.gsub, string.rep
local concat, insert, move, remove, sort, unpack =
  table.concat, table.insert, table.move, table.remove, table.sort, table.unpack
local ulen, uoffset = utf8.len, utf8.offset
local STEP, UNIT, MAX_PATTERN_STEPS = K.step, K.unit_bytes, K.max_pattern_steps

-- Budget ----------------------------------------------------------------------------------------------------
local state = {fault = false, forbidden = false}  -- read by Python after each run
local used, limit, deadline = 0, 0, 0
local STOPPED = "routing rule stopped: budget exhausted"

local function trap() error(STOPPED, 0) end

local function exhaust(kind)
  state.fault = kind
  sethook(trap, "", 1)  -- from now on every instruction raises: pcall cannot swallow the stop
  error(STOPPED, 0)
end

local function spend(units)
  used = used + units
  if used > limit then exhaust("instructions") end
end

local function charge(units)
  spend(units)
  if clock() > deadline then exhaust("timeout") end
end

local function tick()  -- the count hook: inline, since its own instructions count down the hook counter too
  used = used + STEP
  if used > limit then exhaust("instructions") end
  if clock() > deadline then exhaust("timeout") end
end

local function settle(...)  -- after a library call: charge the string it made, read the clock
  local r = ...
  charge(type(r) == "string" and #r // UNIT or 0)
  return ...
end

local function forbid(what)
  state.forbidden = what
  error("forbidden: " .. what .. " is not available to routing rules", 3)
end

-- The library as scripts see it: every function charges its work --------------------------------------------
local function size(s) return type(s) == "string" and #s or 32 end  -- numbers are coerced: short

local function span(i, j)
  if type(i) == "number" and type(j) == "number" and j >= i then return j - i + 1 end
  return 0
end

local function linear(f)
  return function(s, ...)
    spend(size(s) // UNIT)
    return settle(f(s, ...))
  end
end

local function repetitions(p)  -- unbounded repetitions (* + - %b %1-9) and optionals (?) outside sets
  local q, r, i, n = 0, 0, 1, #p
  while i <= n do
    local c = byte(p, i)
    if c == 37 then  -- %
      local d = byte(p, i + 1)
      if d == 98 then q = q + 1; i = i + 4
      elseif d and d >= 49 and d <= 57 then q = q + 1; i = i + 2
      else i = i + 2 end
    elseif c == 91 then  -- [set]: the first character may be a literal ]
      i = i + 1
      if byte(p, i) == 94 then i = i + 1 end
      repeat
        if byte(p, i) == 37 then i = i + 1 end
        i = i + 1
      until i > n or byte(p, i) == 93
      i = i + 1
    else
      if c == 42 or c == 43 or c == 45 then q = q + 1 elseif c == 63 then r = r + 1 end
      i = i + 1
    end
  end
  return q, r
end

local function guard(s, p, anchors, per_byte)  -- refuse a pattern too costly for this subject, charge the scan
  local n = size(s)
  if type(p) == "string" then
    local q, r = repetitions(p)
    if not (anchors and byte(p, 1) == 94) then q = q + 1 end  -- unanchored: tried at every start position
    if (n + 1.0) ^ q * 2.0 ^ r > MAX_PATTERN_STEPS then
      error("pattern too complex for a " .. n .. "-byte subject", 3)
    end
  end
  spend(n * per_byte + 1)
end

local safe_string = {}
for k, f in next, string do safe_string[k] = linear(f) end
safe_string.dump = nil
safe_string.find = function(s, p, init, plain)
  if plain then spend(size(s) // UNIT) else guard(s, p, true, 1) end
  return settle(find(s, p, init, plain))
end
safe_string.match = function(s, p, init) guard(s, p, true, 1) return settle(match(s, p, init)) end
safe_string.gsub = function(s, p, repl, n) guard(s, p, true, 3) return settle(gsub(s, p, repl, n)) end
safe_string.gmatch = function(s, p, init)
  guard(s, p, false, 1)
  local step = gmatch(s, p, init)
  return function() return settle(step()) end
end
safe_string.rep = function(s, n, sep)  -- one unit per repetition (a memcpy call each) plus the bytes
  if type(n) == "number" and n > 0 then charge(n + n * (size(s) + size(sep or "")) / UNIT) end
  return settle(rep(s, n, sep))
end

local safe_table = {pack = table.pack}
safe_table.concat = function(t, sep, i, j)
  spend(span(i or 1, j or (type(t) == "table" and rawlen(t) or 0)))
  return settle(concat(t, sep, i, j))
end
safe_table.unpack = function(t, i, j)
  spend(span(i or 1, j or (type(t) == "table" and rawlen(t) or 0)))
  return settle(unpack(t, i, j))
end
safe_table.move = function(a1, f, e, t, a2) spend(span(f, e)) return settle(move(a1, f, e, t, a2)) end
safe_table.insert = function(t, ...)
  if select("#", ...) >= 2 and type(t) == "table" then spend(rawlen(t)) end
  return settle(insert(t, ...))
end
safe_table.remove = function(t, ...)
  if select("#", ...) >= 1 and type(t) == "table" then spend(rawlen(t)) end
  return settle(remove(t, ...))
end
safe_table.sort = function(t, cmp)  -- n log n comparisons, each as long as the longest string compared
  if type(t) == "table" then
    local n, widest = rawlen(t), 0
    if cmp == nil then
      for i = 1, n do local v = rawget(t, i) if type(v) == "string" and #v > widest then widest = #v end end
    end
    spend(n * (log(n + 1, 2) + 1) * (1 + widest // UNIT))
  end
  return settle(sort(t, cmp))
end

local safe_math = {}
for k, v in next, math do safe_math[k] = v end
safe_math.randomseed = nil  -- one evaluation must not steer the next one's random numbers

local safe_utf8 = {char = utf8.char, charpattern = utf8.charpattern, codes = utf8.codes,
  codepoint = linear(utf8.codepoint), len = linear(ulen), offset = linear(uoffset)}

local function withheld(names)
  return {__metatable = false, __index = function(_, k) if names[k] then forbid(names[k]) end end}
end
local LIBS = {string = safe_string, math = safe_math, table = safe_table, utf8 = safe_utf8}
local LIB_META = {string = withheld({dump = "string.dump"}), math = withheld({randomseed = "math.randomseed"}),
  table = withheld({}), utf8 = withheld({})}
setmetatable(safe_string, LIB_META.string)
getmetatable("").__index = safe_string  -- method calls on strings ("x"):rep(...) use the wrapped library

local BASE = {assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = linear(tonumber), tostring = tostring, type = type, _VERSION = _VERSION}
local FORBIDDEN = {}
for _, name in ipairs(forbidden_list) do FORBIDDEN[name] = true end

local ENV_META = {__metatable = false, __index = function(env, k)
  local lib = LIBS[k]
  if lib then  -- a private copy per evaluation: what the script writes into it dies with the evaluation
    local copy = {}
    for name, f in next, lib do copy[name] = f end
    rawset(env, k, setmetatable(copy, LIB_META[k]))
    return copy
  end
  local f = BASE[k]
  if f == nil and FORBIDDEN[k] then forbid(k) end
  return f
end}

-- The visitor: read-only proxies over the tables Python built -----------------------------------------------
local function deny() error("the visitor table is read-only", 2) end
local function ro_pairs(p)  -- iterate without handing out the table behind the proxy
  local data = dgetmetatable(p).__index
  return function(_, k) return next(data, k) end, p, nil
end
local function ro_len(p) return rawlen(dgetmetatable(p).__index) end
local function freeze(t)
  for k, v in next, t do if type(v) == "table" then t[k] = freeze(v) end end
  return setmetatable({}, {__index = t, __newindex = deny, __pairs = ro_pairs, __len = ro_len, __metatable = false})
end

-- The result ------------------------------------------------------------------------------------------------
local FIELDS = {group = true, agent = true, priority = true, skills = true, note = true}

local function name_ok(v, max) return type(v) == "string" and #v > 0 and #v <= max and ulen(v) ~= nil end

local function skill_list(skills)
  if type(skills) ~= "table" or getmetatable(skills) ~= nil then return nil, "skills must be an array of strings" end
  local n, count = rawlen(skills), 0
  if n > K.max_skills then return nil, "more than " .. K.max_skills .. " skills" end
  for _ in next, skills do
    count = count + 1
    if count > n then return nil, "skills must be an array (keys 1..n)" end
  end
  for i = 1, n do
    if not name_ok(skills[i], K.max_skill_bytes) then
      return nil, "skill " .. i .. " must be a non-empty UTF-8 string of at most " .. K.max_skill_bytes .. " bytes"
    end
  end
  return skills
end

local function validate(n, res)
  if n > 1 then return "bad", "route returned " .. n .. " values; expected one table or nil" end
  if res == nil then return "none" end
  if type(res) ~= "table" or getmetatable(res) ~= nil then
    return "bad", "route returned a " .. type(res) .. " value; expected a table or nil"
  end
  for k in next, res do
    if not FIELDS[k] then return "bad", "unknown field " .. sub(tostring(k), 1, 40) end
  end
  local group, agent, priority, note = res.group, res.agent, res.priority, res.note
  for field, v in pairs({group = group, agent = agent}) do
    if not name_ok(v, K.max_name_bytes) then
      return "bad", field .. " must be a non-empty UTF-8 string of at most " .. K.max_name_bytes .. " bytes"
    end
  end
  if priority == nil then priority = 0
  elseif type(priority) ~= "number" or priority ~= floor(priority) then
    return "bad", "priority must be an integer"
  else
    priority = tointeger(priority < K.priority_min and K.priority_min or
      priority > K.priority_max and K.priority_max or priority)
  end
  if note == nil then note = ""
  elseif type(note) ~= "string" then return "bad", "note must be a string"
  else
    local cut = uoffset(note, K.max_note_chars + 1)
    if cut then note = sub(note, 1, cut - 1) end
    if ulen(note) == nil then return "bad", "note must be valid UTF-8" end
  end
  local skills, why = {}, nil
  if res.skills ~= nil then
    skills, why = skill_list(res.skills)
    if not skills then return "bad", why end
  end
  return "decision", group, agent, priority, note, unpack(skills)
end

-- The run ---------------------------------------------------------------------------------------------------
local chunk, err = load(source, "=" .. chunkname, "t", {})
if not chunk then return nil, err end
assert(setupvalue(chunk, 1, {}) == "_ENV")
python = nil
package.loaded.python = nil

local function collect(...) return select("#", ...), ... end
local function finish(...) sethook() return ... end

local function run(data, instructions, at)
  state.fault, state.forbidden = false, false
  local env = setmetatable({}, ENV_META)
  local visitor = data and freeze(data)
  setupvalue(chunk, 1, env)
  used, limit, deadline = 0, instructions, at
  sethook(tick, "", STEP)
  chunk()
  local route = rawget(env, "route")
  if not data then return finish("probe", type(route) == "function") end
  if type(route) ~= "function" then error("the rule no longer defines a function route(visitor)", 0) end
  return finish(validate(collect(route(visitor))))
end

return run, state, sethook
"""


def _deny_attribute(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("routing rules have no access to Python objects")


def _plain(value: object, depth: int, budget: list[int]) -> object:
    """`value` as str/int/float/bool/list/dict only, within the visitor bounds; None means leave the key out."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"visitor has more than {MAX_VISITOR_VALUES} values")
    match value:
        case None | bool() | float():
            return value
        case int() if not lua54.LUA_MININTEGER <= value <= lua54.LUA_MAXINTEGER:
            raise ValueError(f"visitor integer {value} does not fit a Lua integer")
        case int():
            return value
        case str() if len(value) > MAX_VISITOR_STRING:
            raise ValueError(f"visitor string longer than {MAX_VISITOR_STRING} characters")
        case str():
            return value
    if depth >= MAX_VISITOR_DEPTH:
        raise ValueError(f"visitor nested deeper than {MAX_VISITOR_DEPTH} tables")
    if isinstance(value, Mapping):
        return _plain_table(value, depth, budget)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = [_plain(item, depth + 1, budget) for item in value]
        if any(item is None for item in items):
            raise ValueError("visitor lists cannot hold None (a Lua array ends at the first nil)")
        return items
    raise TypeError(f"visitor values must be str, int, float, bool, lists or mappings, not {type(value).__name__}")


def _plain_table(value: Mapping[object, object], depth: int, budget: list[int]) -> dict[str, object]:
    table: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > MAX_VISITOR_STRING:
            raise TypeError(f"visitor keys must be strings of at most {MAX_VISITOR_STRING} characters: {key!r:.40}")
        converted = _plain(item, depth + 1, budget)
        if converted is not None:
            table[key] = converted
    return table


def _first_line(error: BaseException) -> str:
    text = str(error).split("\nstack traceback:", 1)[0].strip() or type(error).__name__
    return text[:MAX_ERROR_CHARS]


class _Sandbox:
    """One Lua runtime holding one compiled rule, its trusted runner and the runner's fault flags."""

    def __init__(self, source: str, name: str, limits: RuleLimits) -> None:
        self.lua = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=False,
            max_memory=limits.memory_bytes,
            attribute_filter=_deny_attribute,
        )
        constants = {
            "step": HOOK_STEP,
            "unit_bytes": UNIT_BYTES,
            "max_pattern_steps": MAX_PATTERN_STEPS,
            "max_name_bytes": MAX_NAME_BYTES,
            "max_skills": MAX_SKILLS,
            "max_skill_bytes": MAX_SKILL_BYTES,
            "max_note_chars": MAX_NOTE_CHARS,
            "priority_min": PRIORITY_MIN,
            "priority_max": PRIORITY_MAX,
        }
        try:
            setup = self.lua.compile(_SANDBOX_LUA, name="=kefu-sandbox", mode="t")
            out = setup(time.monotonic, source, name, self.lua.table_from(FORBIDDEN), self.lua.table_from(constants))
        except lua54.LuaError as e:
            raise RuleError("memory" if isinstance(e, lua54.LuaMemoryError) else "compile", _first_line(e)) from None
        if out[0] is None:
            raise RuleError("compile", str(out[1])[:MAX_ERROR_CHARS])
        self._run, self._state, self._sethook = out

    def run(self, data: dict[str, object] | None, limits: RuleLimits) -> tuple[Any, ...]:
        """The runner's results, or RuleError; `data` None only runs the chunk (the compile-time probe)."""
        failure: RuleError | None = None
        try:
            table = None if data is None else self.lua.table_from(data, recursive=True)
            out = self._run(table, limits.instructions, time.monotonic() + limits.seconds)
        except lua54.LuaMemoryError:
            failure = RuleError("memory", f"memory limit of {limits.memory_bytes} bytes reached")
        except lua54.LuaError as e:
            failure = RuleError("error", _first_line(e))
        finally:
            self._sethook()
        fault, forbidden = self._state["fault"], self._state["forbidden"]
        if fault == "instructions":
            raise RuleError("instructions", f"more than {limits.instructions} instructions")
        if fault == "timeout":
            raise RuleError("timeout", f"ran longer than {limits.seconds} s")
        if failure is not None and failure.reason == "memory":
            raise failure
        if forbidden:
            raise RuleError("forbidden", f"{forbidden} is not available to routing rules")
        if failure is not None:
            raise failure
        return out if isinstance(out, tuple) else (out,)


def _decision(out: tuple[Any, ...]) -> Decision | None:
    kind = out[0]
    if kind == "none":
        return None
    if kind == "bad":
        raise RuleError("bad_result", str(out[1]))
    group, agent, priority, note, *skills = out[1:]
    return Decision(group, agent, int(priority), tuple(cast(list[str], skills)), note)


class RuleEngine:
    """One routing rule, compiled once, evaluated for each new conversation."""

    def __init__(self, source: str, *, name: str = "route.lua", limits: RuleLimits = RuleLimits()) -> None:
        """Compile `source` and run it once to check it defines ``route``; RuleError("compile") if not."""
        if len(source.encode()) > MAX_SOURCE_BYTES:
            raise RuleError("compile", f"{name} is larger than {MAX_SOURCE_BYTES} bytes")
        self.name = name
        self.limits = limits
        self._source = source
        self._lock = threading.Lock()
        self._sandbox: _Sandbox | None = _Sandbox(source, name, limits)
        if not self._sandbox.run(None, limits)[1]:
            raise RuleError("compile", f"{name} defines no function route(visitor)")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-rules")

    def evaluate(self, visitor: Mapping[str, object]) -> Decision | None:
        """Run ``route(visitor)``; None means default routing. Blocks while Lua runs: call it from a worker.

        Raises RuleError for every failure of the rule, ValueError or TypeError for a visitor that is not plain
        data within the bounds (the caller's bug).
        """
        data = cast(dict[str, object], _plain(visitor, 0, [MAX_VISITOR_VALUES]))
        with self._lock:
            if self._sandbox is None:
                self._sandbox = _Sandbox(self._source, self.name, self.limits)
            try:
                return _decision(self._sandbox.run(data, self.limits))
            except RuleError as e:
                if e.reason == "memory":
                    self._sandbox = None  # start the next evaluation from a fresh runtime
                raise

    async def evaluate_async(self, visitor: Mapping[str, object]) -> Decision | None:
        """`evaluate` in the engine's worker thread; the event loop runs on meanwhile."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.limits.seconds + ASYNC_GRACE):
                return await loop.run_in_executor(self._executor, self.evaluate, visitor)
        except TimeoutError:
            raise RuleError("timeout", f"no answer within {self.limits.seconds + ASYNC_GRACE:g} s") from None

    def close(self) -> None:
        """Take no more `evaluate_async` calls and let the thread exit once those already queued have run (each
        within its budget; cancelling them would surface in their callers as a CancelledError)."""
        self._executor.shutdown(wait=False)


__all__ = ["Decision", "Reason", "RuleEngine", "RuleError", "RuleLimits"]
