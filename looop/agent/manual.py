"""``looop help``: the manual, and the root agent's operating contract (SPEC §13).

One text that an agent told "read ``looop help``, then loop on ``looop _
wait``" needs and nothing else. The parts that are tables elsewhere are
generated from those tables, never copied: the config keys from
``config.KNOBS``, the exit codes and their meanings from
``errors.MEANINGS``, the worker contract from ``workers.contract``. The
rest is prose, and tests hold it to the code: every command registered
(top level and under ``looop _``) is named here, every field ``_ state
--json`` prints and every kind of ``changed`` has its line, the exit codes
are exactly those ``looop.errors`` defines, no line is wider than 80
columns, and the root agent's loop, copied out of this text, runs and ends
on exit 3. So a new verb, field or code cannot arrive without its line.
Rejected: generating the verb list from click's help (the manual says what
a verb is *for*, in the agent's terms, which the help does not).
"""

from __future__ import annotations

import textwrap

from looop import config, errors
from looop.workers.contract import CONTRACT

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

RUNNING IT
  looop up                 start the pulse (through systemd or launchd when
                           installed, detached otherwise); returns once ready
  looop down               stop the pulse, then every live worker unless
                           --keep-workers
  looop restart            stop the pulse and start it again (workers stay)
  looop reload             the pulse re-reads its config (SIGHUP), no restart
  looop install            install the pulse and an hourly reaper as user
                           services; `looop uninstall` removes them
  looop pulse              the pulse in the foreground (what the unit runs)
  looop status [--json]    is the pulse running? exit 0 yes, 3 no, 4 unknown
  looop logs [-f] [-n N]   the pulse's log (its journal, or its log file)
  looop doctor             what breaks this setup, each with its fix; exit 1
                           when anything does
  looop sense [-v] [--json]
                           beat now; -v: each sensor's result, slowest first
  looop reap               remove dead worker sessions and stale claims
  looop cost [--today] [--json]
                           spend by day, kind and runner (from `_ cost`)
  looop config show|get|set|path
                           the knobs (below)
  looop completion bash|zsh|fish
                           the shell's completion script:
                           eval "$(looop completion bash)"
  looop help [COMMAND...]  this manual, or COMMAND's own help
  looop version            which looop this is

THE DATA DIR  ($LOOOP_DATA_DIR, else ${XDG_STATE_HOME:-~/.local/state}/looop)
  PLAYBOOK.md        the user's judgment guide; earlier versions in playbook.d/
  goals/*.md         desired state, one file per goal; goals/archive/ when done
  sensors/*.sh       observers, each prints one JSON object
  snapshots/         the last beat's readings (replaced whole every beat)
  sessions/<id>/     a worker's scratch: meta.json, status.json, output.log
  claims/*.json      leases workers hold on shared resources
  asks/, answers/    the mailbox between workers and the root agent
  reports/           what workers deliver for a person to read
  runs/              one record per `_ run`
  journal.md         one line per move, written only by looop's verbs
  events.jsonl       machine-readable lifecycle events
  cost.jsonl         the spend ledger
  config.toml        the knobs (below); $LOOOP_CONFIG names another file
  The lock, the pid and the last beat's record live in the runtime dir
  ($LOOOP_RUNTIME_DIR, else $XDG_RUNTIME_DIR/looop), never in the data dir.

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
"""

AGENT = """\
THE ROOT AGENT'S OPERATING CONTRACT
  Loop on `_ wait`, passing back each answer's cursor so that nothing that
  changes while you act is lost; the loop ends when the pulse is down:

      c=""
      while state=$(looop _ wait --json ${c:+--since "$c"}); do
          c=$(printf '%s' "$state" | jq -r .cursor)
          # act on "changed" (below) through the verbs, then wait again
      done
      # exit 3: the pulse is down (changed: ["pulse-down"]): tell the human.
      # Any other exit: stderr says why (2: a bad cursor, 78: the config).

  (jq reads the cursor here; any JSON reader will do.) Each time, decide
  the one move that matters most, make it, and wait again. `changed` says
  what moved since your cursor:
    asks        a worker waits for you: answer each pending ask
    goals       a goal was written or archived: re-read goals/ID.md
    playbook    the PLAYBOOK changed: re-read it, it is your judgment guide
    snapshots   a sensor's signal moved: compare the world with the goals
    workers     a worker started or ended (read its report in reports/), or
                turned stuck (below)
    pulse-down  nothing senses any more: the loop ends with exit 3
  An ask already pending at your cursor does not wake you again, so you
  may relay it to the human and keep waiting.

  Reading:
    looop _ state [--json]                 the whole state (a pure read)
    looop _ wait [--json] [--since C] [--timeout S]
                                           block until there is something to do
    looop _ asks [--json]                  pending asks, oldest first
  The mailbox:
    looop _ answer ASK_ID [TEXT...|-] [--force]
    looop _ ask [WORKER] --prompt T [--ref PATH] [--options a,b]...
                [--timeout S] [--json]
                                 a worker's: blocks, prints only the answer;
                                 a repeated --options adds choices
  Changing the world (each writes whole, journals one line, records an event;
  --journal TEXT gives the reason; a body is the words, or stdin with -):
    looop _ goal write ID [BODY...|-]      goals/ID.md
    looop _ goal archive ID                into goals/archive/
    looop _ sensor write NAME [SCRIPT...|-]
                                           sensors/NAME.sh (must start with #!)
    looop _ sensor remove NAME
    looop _ sensor test NAME [--json]      run it once; publishes nothing
    looop _ playbook write [BODY...|-]     PLAYBOOK.md, the old one kept
    looop _ run [--reason|--journal T] [--timeout S] [--allow-dangerous]
                -- COMMAND...              one command, recorded in runs/;
                                           irreversible ones (read as the
                                           shell reads them: sudo, rm -rf of
                                           ~ / the data dir, a force-push to
                                           main, a download run by a shell,
                                           mkfs, a write onto a disk,
                                           shutdown) refused unless
                                           --allow-dangerous or the human set
                                           LOOOP_RUN_ALLOW_DANGEROUS=1; its
                                           options come first (a misspelt one
                                           is exit 2), the command is every
                                           word after
    looop _ notify MESSAGE...              tell the human ([notify] command)
  Workers:
    looop _ worker start ID [PROMPT...|-] [--timeout S] [--journal T]
                                           a task of up to 4 MiB
                                           (worker.max_prompt_bytes);
                                           {prompt}, {prompt_file}, {id} are
                                           replaced in worker.command only;
                                           with neither {prompt} nor
                                           {prompt_file}, or a prompt over
                                           128 KiB, the worker reads it on
                                           stdin ({prompt} names the file)
    looop _ worker kill ID [--journal T]   ends its whole process tree
    looop _ worker list [--json]           also `looop workers`; a live
                                           worker's health (below)
    looop logs ID [-f] [-n N]              a worker's transcript
    looop _ claim NAME [--session ID]      lease claims/NAME.json; exit 1 if
                                           another live session holds it
    looop _ unclaim NAME [--session ID]    release your own lease
    looop _ cost KIND ID RUNNER USD        record spend (0-1e6 USD a line)
    looop _ kill ID                        a worker ending itself

  A live worker's health, in every listing with its idle seconds (since
  its last output; an answer to its ask counts) and its ask's age:
    waiting     it has a pending ask: answer it (or relay it)
    busy        it printed within worker.quiet_after
    quiet       no output for longer, no ask
    stuck       no output and no ask for worker.stuck_after: read
                `looop logs ID`, then kill it or let it be; with
                worker.stuck_kill its supervisor ends it (killed, 124,
                reason stuck). Turning stuck wakes `_ wait` (workers).

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

STATE = """\
THE STATE  (`looop _ state --json`; `_ wait --json` prints the same)
  One JSON object:
    cursor        pass it back with `_ wait --since` (opaque)
    changed       from `_ wait` only: what moved (above)
    pulse_alive   is the pulse running (from its lock, as `looop status`)
    beats_failing null, or the running pulse's streak of failed beats
                  (count, since, why): tell the human
    world_hash    the hash of the PLAYBOOK, the goals and every signal
    snapshots     sensor readings by name (sensor-NAME, sys-sessions,
                  sys-claims, sys-goals); a failed sensor's signal holds
                  "error": true, its detail the message and stderr
    asks          pending asks, oldest first: id, worker, prompt, options,
                  reference, ts, and stranded (its worker is gone)
    workers       every session: id, state (starting, running, exited,
                  killed, dead, unknown), alive, started, exit_code, unit,
                  pending_ask (its first pending ask's id, or null),
                  health (busy, waiting, quiet, stuck; null unless alive),
                  idle and ask_age (seconds, or null)
    goals         the goal ids; the text is in goals/ID.md
    journal_tail  the last 20 lines of journal.md
    runs          the last `_ run` records, and any interrupted one
    problems      files looop could not read, as {path, why}: fix them or
                  tell the human
    data_dir      the data dir all of this was read from
  Without --json, a short summary for people.
"""

IDS = """\
IDS AND TEXT
  Goal, sensor, worker, ask and claim ids are 1 to 64 of A-Z a-z 0-9 . _ -,
  starting with a letter or digit; anything else is refused before a file
  is touched. Arguments and stdin are UTF-8 text: a byte that is not UTF-8
  (or a NUL in a body) is read as U+FFFD. Human output shows control
  characters and newlines in any id, prompt, name or message escaped (\\n,
  \\x1b), one item per line; --json output is the text as stored.
"""


def _config_part() -> str:
    lines = ["CONFIG  (environment > config file > default; `looop config set KEY VALUE`)"]
    for knob in config.KNOBS.values():
        default = config.format_value(knob.default) if knob.default is not None else "unset"
        lines.append(f"  {knob.key} = {default}   (${knob.env})")
        lines += textwrap.wrap(knob.help, 76, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


def _exit_part() -> str:
    lines = ["EXIT CODES"] + [f"  {code:>3}  {what}" for code, what in errors.MEANINGS.items()]
    return "\n".join(lines) + "\n"


def text() -> str:
    worker = "THE WORKER CONTRACT  (prepended to every worker's prompt)\n" + "".join(
        f"  {line}\n" if line else "\n" for line in CONTRACT.splitlines()
    )
    return "\n".join([INTRO, AGENT, STATE, worker, IDS, _config_part(), _exit_part()])
