"""``looop help`` and ``looop --help``: the manual, the root agent's operating contract (SPEC §13).

One text that an agent told "read ``looop help``, then loop on ``looop _
wait``" needs and nothing else, and its structure as JSON (``looop help
--json``) for a program that builds on looop. Both are rendered from the
same tables, never copied: the commands (``COMMANDS``), the root agent's
verbs (``VERBS``), the kinds of ``changed`` (``CHANGED``), the fields of ``_
state --json`` (``FIELDS``) and the data dir (``DATA_FILES``, the man page's
FILES too) are tables here; the config keys come from ``config.KNOBS``, the
exit codes from ``errors.MEANINGS``, the worker contract from
``workers.contract``. The rest is prose.

``agent.helpjson``'s ``problems`` holds the tables to the commands click
has registered, both ways, and ``help --json`` refuses to print when it
fails; tests hold the rest: every field ``_ state --json`` prints and every
kind of ``changed`` has its row, no line is wider than 80 columns, and the
root agent's loop, copied out of this text, runs and ends on exit 3. So a new verb, field or code
cannot arrive without its line. Rejected: generating the verb list from
click's help (the manual says what a verb is *for*, in the agent's terms,
which the help does not), and verbs named in prose only (nothing but a text
search could tell one was missing). No click here: ``looop --help`` is
answered without it.
"""

from __future__ import annotations

import re
import textwrap

from looop import config, errors, runners
from looop.workers.contract import CONTRACT

WIDTH = 79  # the manual's lines are wrapped to fit in 80 columns
NBSP = "\u00a0"  # in a table's text: a space the manual never breaks a line at

INTRO = """\
LOOOP(1)                     the looop manual

looop is a small control loop for one person's work, shaped like a
Kubernetes controller: desired state (goals, a PLAYBOOK) is compared with
observed state (sensor readings) by an agent that acts until they agree.
looop itself never calls a model; its memory is plain files in a data dir.

THREE ROLES
  pulse       a user service that senses on a beat: it runs the sensor
              scripts, publishes their readings as snapshots and keeps a
              world hash. One per data dir (a profile), held by a lock.
  root agent  an agent session you run. It blocks on `looop _ wait`, reads
              the state, and acts only through looop's verbs.
  workers     agent sessions the root agent starts for multi-step work;
              looop supervises them, they ask through the mailbox and end.
"""

# The manual's tables. A row is (the command paths it covers, its usage
# after "looop ", its purpose); a path's last word may name several
# subcommands ("config show|get"). ``problems`` holds them to click's tree.
Row = tuple[tuple[str, ...], str, str]

COMMANDS: tuple[Row, ...] = (
    (
        ("init",),
        "init [--runner P] [--install]",
        "a first run: the data dir, the config, a runner preset as the default, the service"
        " if asked; on a terminal it asks, elsewhere only flags count",
    ),
    (
        ("up",),
        "up",
        "start the pulse (through systemd or launchd when installed, detached"
        " otherwise); returns once ready",
    ),
    (("down",), "down", "stop the pulse, then every live worker unless --keep-workers"),
    (("restart",), "restart", "stop the pulse and start it again (workers stay)"),
    (("reload",), "reload", "the pulse re-reads its config (SIGHUP), no restart"),
    (("install",), "install", "the pulse (and an hourly reaper) as user services; takes over up's"),
    (("uninstall",), "uninstall", "remove them (the data dir stays)"),
    (
        ("pulse", "_ pulse"),
        "pulse",
        "the pulse in the foreground (what the unit runs; also `looop _ pulse`)",
    ),
    (("status",), "status [--json]", "is the pulse running? exit 0 yes, 3 no, 4 unknown"),
    (("logs",), "logs [-f] [-n N] [--since T] [-o json]", "the pulse's log (stderr names it)"),
    (("watch",), "watch [--once]", "a person's live view, with keys; --once: one plain frame"),
    (("doctor",), "doctor [--json]", "what breaks this setup, with fixes; exit 1 on any"),
    (
        ("sense",),
        "sense [-v] [--json]",
        "beat now, every sensor (cached ones too); -v: each sensor's result and cadence,"
        " slowest first",
    ),
    (("reap",), "reap", "remove dead worker sessions and stale claims"),
    (
        ("cost",),
        "cost [--today] [--json]",
        "spend by day, kind and runner (from `_ cost`, and the spend a runner prints:"
        " RUNNERS below)",
    ),
    (("config show|get|set|path",), "config show|get|set|path", "the knobs (below)"),
    (
        ("config runner add", "config runner list"),
        "config runner add NAME (--preset P | --command ARGV) [--default]",
        "write [runners.NAME] (RUNNERS below); `config runner list` shows them",
    ),
    (
        ("completion",),
        "completion bash|zsh|fish",
        'the shell\'s completion script: eval\u00a0"$(looop\u00a0completion\u00a0bash)"',
    ),
    (
        ("help",),
        "help [COMMAND...] [--json]",
        "this manual (so is `looop --help`), or"
        " COMMAND's own help; --json: the manual's tables as one JSON object",
    ),
    (("version",), "version", "which looop this is"),
)

# The root agent's verbs, under the headings the manual gives them.
VERBS: tuple[tuple[str, tuple[Row, ...]], ...] = (
    (
        "Reading:",
        (
            (("_ state",), "_ state [--json]", "the whole state (a pure read)"),
            (
                ("_ wait",),
                "_ wait [--json] [--since C] [--timeout S] [--for CATS]",
                "block until there is something to do (above)",
            ),
            (("_ asks",), "_ asks [--json]", "pending asks, oldest first"),
        ),
    ),
    (
        "The mailbox:",
        (
            (("_ answer",), "_ answer ASK_ID [TEXT...|-] [--force]", "answer it; --force: again"),
            (
                ("_ ask",),
                "_ ask [WORKER] --prompt T [--ref PATH] [--options a,b]... [--timeout S] [--json]",
                "a worker's: blocks, prints only the answer; a repeated --options adds choices",
            ),
        ),
    ),
    (
        "Changing the world (each writes whole, journals one line, records an event;\n"
        "  --journal TEXT gives the reason; a body is the words, or stdin with -):",
        (
            (("_ goal write",), "_ goal write ID [BODY...|-]", "goals/ID.md"),
            (("_ goal archive",), "_ goal archive ID", "into goals/archive/"),
            (
                ("_ sensor write",),
                "_ sensor write NAME [SCRIPT...|-]",
                "sensors/NAME.sh (must start with #!)",
            ),
            (("_ sensor remove",), "_ sensor remove NAME", "sensors/NAME.sh, gone"),
            (
                ("_ sensor test",),
                "_ sensor test NAME [--json]",
                "run it once; publishes nothing; says its cadence and when the pulse next runs it",
            ),
            (
                ("_ playbook write",),
                "_ playbook write [BODY...|-]",
                "PLAYBOOK.md, the old one kept",
            ),
            (
                ("_ run",),
                "_ run [--reason|--journal T] [--timeout S] [--allow-dangerous] --\u00a0COMMAND...",
                "one command, recorded in runs/; irreversible ones (read as the"
                " shell reads them: sudo, rm -rf of ~\u00a0/ the data dir, a force-push to main, a"
                " download run by a shell, mkfs, a write onto a disk, shutdown) refused unless"
                " --allow-dangerous or the human set LOOOP_RUN_ALLOW_DANGEROUS=1; its options come"
                " first (a misspelt one is exit 2), the command is every word after",
            ),
            (
                ("_ schedule write",),
                "_ schedule write NAME (--in D | --at T | --every D) [--note T]",
                "wake the loop at a time: --in 90s, 2h, 1d; --at 2026-12-08T09:00 in local time"
                " (+01:00 or Z for a zone; 09:00: its next coming), a one-shot's must be ahead;"
                " --every 1d re-arms at each instant (1 s to 10 years; with --in or --at: the"
                " first). Due, it wakes `_ wait` at that instant and is listed in `_ state`: a"
                " one-shot until removed, an --every one with its next instant. An instant"
                " missed while you acted wakes the next `_ wait --since` at once",
            ),
            (
                ("_ schedule remove",),
                "_ schedule remove NAME",
                "done with it (or before it is due)",
            ),
            (("_ schedule list",), "_ schedule list [--json]", "every schedule, due and next"),
            (("_ notify",), "_ notify MESSAGE...", "tell the human ([notify] command)"),
        ),
    ),
    (
        "Workers:",
        (
            (
                ("_ worker start",),
                "_ worker start ID [PROMPT...|-] [--timeout S] [--runner NAME] [--verify CMD]..."
                " [--journal T]",
                "a task of up to 4 MiB (worker.max_prompt_bytes); {prompt}, {prompt_file}, {id} are"
                " replaced in the command only (--runner's, else worker.runner's, else"
                " worker.command); with neither {prompt} nor {prompt_file}, or a prompt over"
                " 128\u00a0KiB, the worker reads it on stdin ({prompt} names the file). --verify: a"
                " post-condition (up to 16), run as `_ run` runs it (its guard rail, [run]"
                " timeout, in the data dir) once the worker exits 0 or ends itself; its results"
                ' are in sessions/ID/status.json, and a failure is "verify failed" in every'
                " listing and wakes `_ wait`",
            ),
            (("_ worker kill",), "_ worker kill ID [--journal T]", "ends its whole process tree"),
            (
                ("_ worker list", "workers"),
                "_ worker list [--json]",
                "also `looop workers`; a live worker's health (below)",
            ),
            (
                ("_ tell",),
                "_ tell ID [MESSAGE...|-] [--journal T]",
                "steer a live worker: the message comes after its next answer or in `_ told`,"
                " whichever is first, once (16 KiB; exit 1: ID is not alive)",
            ),
            (
                ("_ told",),
                "_ told [WORKER] [--all] [--json]",
                "a worker's: messages told to it and not yet shown (marked shown)",
            ),
            (("logs",), "logs ID [-f] [-n N]", "a worker's transcript"),
            (
                ("_ claim",),
                "_ claim NAME [--session ID]",
                "lease claims/NAME.json; exit 1 if another live session holds it",
            ),
            (("_ unclaim",), "_ unclaim NAME [--session ID]", "release your own lease"),
            (("_ cost",), "_ cost KIND ID RUNNER USD", "record spend (0-1e6 USD a line)"),
            (("_ kill",), "_ kill ID", "a worker ending itself"),
        ),
    ),
)

# What `changed` may hold, and what the agent does about each.
CHANGED: tuple[tuple[str, str], ...] = (
    ("asks", "a worker waits for you: answer each pending ask"),
    ("goals", "a goal was written or archived: re-read goals/ID.md"),
    ("playbook", "the PLAYBOOK changed: re-read it, it is your judgment guide"),
    ("snapshots", "a sensor's signal moved: compare the world with the goals"),
    (
        "workers",
        "a worker started or ended: read its report in reports/ (and its verify: a failed"
        " one did not do what you asked); or one turned stuck (below)",
    ),
    (
        "schedules",
        'a schedule came due: look at what its note says (the ones with "new": true);'
        " remove a one-shot once done",
    ),
    ("pulse-down", "nothing senses any more: the loop ends with exit 3"),
)

# Every field of `_ state --json` (and of `_ wait --json`).
FIELDS: tuple[tuple[str, str], ...] = (
    ("cursor", "pass it back with `_ wait --since` (opaque)"),
    ("changed", "from `_ wait` only: what moved (above)"),
    ("pulse_alive", "is the pulse running (from its lock, as `looop status`)"),
    (
        "beats_failing",
        "null, or the running pulse's streak of failed beats (count, since, why): tell the human",
    ),
    ("world_hash", "the hash of the PLAYBOOK, the goals and every signal"),
    (
        "snapshots",
        "sensor readings by name (sensor-NAME, sys-sessions, sys-claims,"
        ' sys-goals); a failed sensor\'s signal holds "error": true, its detail the message'
        " and stderr",
    ),
    (
        "asks",
        "pending asks, oldest first: id, worker, prompt, options, reference, ts, and"
        " stranded (its worker is gone)",
    ),
    (
        "workers",
        "every session: id, state (starting, running, exited, killed, dead,"
        " unknown), alive, started, exit_code, unit, pending_ask (its first pending ask's id,"
        " or null), undelivered (messages told, not yet shown to it), verify (its --verify"
        " verdict: passed, failed, skipped, or null), health (busy, waiting, quiet, stuck; null"
        " unless alive), idle and ask_age (seconds, or null)",
    ),
    ("goals", "the goal ids; the text is in goals/ID.md"),
    (
        "schedules",
        "the due schedules: name, due (its latest instant), next (an --every one's next"
        " instant, else null), every (seconds or null), note; from `_ wait`, new (its instant"
        " is after your cursor: what woke you)",
    ),
    ("journal_tail", "the last 20 lines of journal.md"),
    ("runs", "the last `_ run` records, and any interrupted one"),
    ("problems", "files looop could not read, as {path, why}: fix them or tell the human"),
    ("data_dir", "the data dir all of this was read from"),
)

DATA_FILES: tuple[tuple[str, str], ...] = (
    ("PLAYBOOK.md", "the user's judgment guide; earlier versions in playbook.d/"),
    ("goals/*.md", "desired state, one file per goal; goals/archive/ when done"),
    ("sensors/*.sh", "observers, each prints one JSON object"),
    ("snapshots/", "the last beat's readings (replaced whole every beat)"),
    ("sessions/<id>/", "a worker's scratch: meta.json, status.json, output.log"),
    ("claims/*.json", "leases workers hold on shared resources"),
    ("asks/, answers/", "the mailbox between workers and the root agent"),
    ("reports/", "what workers deliver for a person to read"),
    ("schedules/*.json", "the root agent's time triggers (`_ schedule`)"),
    ("runs/", "one record per `_ run`"),
    ("journal.md", "one line per move, written only by looop's verbs"),
    ("events.jsonl", "machine-readable lifecycle events"),
    ("cost.jsonl", "the spend ledger"),
    ("config.toml", "the knobs (below); $LOOOP_CONFIG names another file"),
)
RUNTIME = """\
  The lock, the pid and the last beat's record live in the runtime dir
  ($LOOOP_RUNTIME_DIR, else $XDG_RUNTIME_DIR/looop), never in the data dir.
"""

DATA = """\
SENSORS
  A sensor is an executable sensors/NAME.sh that prints ONE JSON object:
      {"signal": ..., "detail": ...}
  Only `signal` is hashed into the world hash, so only a change of `signal`
  wakes the loop; put what changes every beat (times, counts you do not act
  on) in `detail`.
      wrong: {"signal": {"at": "10:31", "failing": 0}}   (wakes every beat)
      right: {"signal": {"failing": 0}, "detail": {"at": "10:31"}}
  Each sensor runs in the data dir with stdin /dev/null, in its own process
  group, ended at sensor_timeout (exit 124). Output over sensor_max_bytes,
  invalid JSON, or a non-zero exit becomes an error reading, and its stderr
  is kept in snapshots/sensor-NAME.err. Try one with `looop _ sensor test NAME`.
  Cadence: a line `# looop: every 10m` (s, m, h or d; 1s to 30d) among its
  first 10 lines makes the pulse run it only that often; between runs each
  beat republishes its last reading, same signal, detail.cached = {read_at,
  every} (`_ state` adds its age). An edited script runs at the next beat;
  `looop sense` runs every sensor; a malformed line is one warning
  (file:line) and the sensor runs every beat.
"""

LOOP = """\
THE ROOT AGENT'S OPERATING CONTRACT
  Loop on `_ wait`, passing back each answer's cursor so that nothing that
  changes while you act is lost. Your shell tool ends a call after a time
  limit: set wait.timeout below it (`looop config set wait.timeout S`, or
  --timeout S on the call), so that a wait with nothing to report ends
  first, with exit 124.

  As an agent, one call per turn:
      looop _ wait --json --since C     (C: the last cursor; the first time,
                                         no --since)
    exit 0    act on `changed` (below) through the verbs; C = its cursor
    exit 124  nothing yet: make the same call again, with the same C
    exit 3    the pulse is down (changed: ["pulse-down"]): tell the human
    other     stderr says why (2: a bad cursor or --for, 78: the config)
    A call your tool killed lost nothing either: call again with the same C.

  As a script that survives 124:

      c=""
      while :; do
          state=$(looop _ wait --json ${c:+--since "$c"}); rc=$?
          [ "$rc" -eq 124 ] && continue    # nothing yet: the same cursor
          [ "$rc" -eq 0 ] || break
          c=$(printf '%s' "$state" | jq -r .cursor)
          # act on "changed" (below) through the verbs, then wait again
      done
      # exit 3: the pulse is down (changed: ["pulse-down"]): tell the human.
      # Any other exit: stderr says why (2: a bad cursor, 78: the config).

  (jq reads the cursor here; any JSON reader will do.) Each time, decide
  the one move that matters most, make it, and wait again. `changed` says
  what moved since your cursor:
"""

AFTER_CHANGED = """\
  An ask already pending at your cursor does not wake you again, so you
  may relay it to the human and keep waiting. `--for asks,workers` (any of
  asks, workers, goals, playbook, snapshots, schedules; comma-separated or
  repeated) wakes you only for those; `changed` and the cursor still cover
  the rest, and pulse-down always wakes.
"""

INVARIANTS = """\
  The invariants:
  - Never take an irreversible step (delete, deploy, pay, push to main,
    write to someone) without the human's yes.
  - Single writer: change goals, sensors, the PLAYBOOK and the journal only
    through these verbs, never by editing the files.
  - Ask, don't guess: when you lack information or authority, ask the
    human (in your conversation, or with `_ notify` when they are away)
    and wait. A worker's ask that is the human's to decide is relayed,
    not answered by you.
  - Answer every ask; a stranded ask (its worker is gone) needs no answer.
"""

HEALTH = """\
  A live worker's health, in every listing with its idle seconds (since its
  last output; an answer to its ask counts) and its ask's age: waiting (a
  pending ask: answer it), busy (it printed within worker.quiet_after),
  quiet (no output for longer, no ask), stuck (neither for
  worker.stuck_after: read `looop logs ID`, then kill it or let it be; with
  worker.stuck_kill its supervisor ends it: killed, 124, reason stuck).
  Turning stuck wakes `_ wait` (workers).
"""

IDS = """\
IDS AND TEXT
  Goal, sensor, schedule, worker, ask and claim ids are 1 to 64 of
  A-Z a-z 0-9 . _ -, starting with a letter or digit; anything else is
  refused before a file is touched. Arguments and stdin are UTF-8 text: a
  byte that is not UTF-8 (or a NUL in a body) is read as U+FFFD. Human
  output shows control characters and newlines in any id, prompt, name or
  message escaped (\\n, \\x1b), one item per line; --json output is the
  text as stored.
"""


def _rows(rows: list[tuple[str, str]], indent: int, column: int, hang: int = 0) -> str:
    """Each (term, meaning) as the manual sets it: the meaning from ``column``, wrapped.

    A term too long for its line wraps (``hang`` columns in on the next; never
    inside a ``[...]``), and a meaning that does not fit after it starts on a
    line of its own. ``NBSP`` marks a space in the text that never breaks.
    """
    lines: list[str] = []
    for term, meaning in rows:
        head = textwrap.wrap(
            re.sub(r"\[[^]]*\]", lambda m: m.group(0).replace(" ", NBSP), term),
            WIDTH - indent,
            subsequent_indent=" " * hang,
            break_long_words=False,
            break_on_hyphens=False,
        )
        body = textwrap.wrap(
            meaning, WIDTH - column, break_long_words=False, break_on_hyphens=False
        )
        head = [" " * indent + line for line in head]
        if body and len(head[-1]) < column:
            head[-1] = head[-1].ljust(column) + body.pop(0)
        lines += head + [" " * column + line for line in body]
    return "".join(line.replace(NBSP, " ") + "\n" for line in lines)


def _commands(rows: tuple[Row, ...], indent: int, column: int) -> str:
    return "".join(
        _rows([(f"looop {usage}", purpose)], indent, column, hang=len(names[0].split("|")[0]) + 7)
        for names, usage, purpose in rows
    )


def _config_part() -> str:
    lines = ["CONFIG  (environment > config file > default; `looop config set KEY VALUE`)"]
    for knob in config.KNOBS.values():
        lines.append(f"  {knob.key} = {_default(knob)}   (${knob.env})")
        lines += textwrap.wrap(knob.help, 76, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


def _default(knob: config.Knob) -> str:
    return config.format_value(knob.default) if knob.default is not None else "unset"


def _exit_part() -> str:
    lines = ["EXIT CODES"] + [f"  {code:>3}  {what}" for code, what in errors.MEANINGS.items()]
    return "\n".join(lines) + "\n"


def text() -> str:
    """The manual: ``looop help`` and ``looop --help``."""
    agent = LOOP + _rows(list(CHANGED), 4, 16) + AFTER_CHANGED + "\n"
    for heading, rows in VERBS:
        agent += f"  {heading}\n" + _commands(rows, 4, 43)
    agent += "\n" + HEALTH
    state = (
        "THE STATE  (`looop _ state --json`; `_ wait --json` prints the same)\n"
        "  One JSON object:\n" + _rows(list(FIELDS), 4, 18) + "  Without --json, a short"
        " summary for people.\n"
    )
    worker = "THE WORKER CONTRACT  (prepended to every worker's prompt)\n" + "".join(
        f"  {line}\n" if line else "\n" for line in CONTRACT.splitlines()
    )
    running = "RUNNING IT\n" + _commands(COMMANDS, 2, 27) + "\n"
    running += "THE DATA DIR  ($LOOOP_DATA_DIR, else ${XDG_STATE_HOME:-~/.local/state}/looop)\n"
    running += _rows(list(DATA_FILES), 2, 21) + RUNTIME + "\n"
    return "\n".join(
        [
            INTRO,
            running + DATA,
            agent + "\n" + INVARIANTS,
            state,
            worker,
            IDS,
            _config_part(),
            runners.manual_part(),
            _exit_part(),
        ]
    )
