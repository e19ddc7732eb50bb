"""``looop help``: the manual, and the root agent's operating contract (SPEC §13).

One text that an agent told "read ``looop help``, then loop on ``looop _
wait``" needs and nothing else. The parts that are tables elsewhere are
generated from those tables, never copied: the config keys from
``config.KNOBS``, the exit codes from ``looop.errors``, the worker contract
from ``workers.contract``. A test checks that every command registered under
``looop _`` is named here, so a new verb cannot arrive without its line.
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
  looop up | down          start / stop the pulse (through systemd or
                           launchd when installed, detached otherwise)
  looop install            install the pulse and an hourly reaper as user
                           services; `looop uninstall` removes them
  looop status [--json]    is the pulse running? exit 0 yes, 3 no, 4 unknown
  looop sense [--json]     beat now
  looop reap               remove dead worker sessions and stale claims
  looop config show|get|set|path
                           the knobs (below); `looop help COMMAND` for any
                           command's own help

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
          # read "changed", act through the verbs below, then wait again
      done
      # exit 3: the pulse is down (changed: ["pulse-down"]); tell the human

  `changed` says what moved: asks (a worker waits for you: answer it),
  goals, playbook (re-read them), snapshots (the world changed: compare it
  with the goals), workers (one started or ended: read its report),
  pulse-down. An ask already pending at your cursor does not wake you again.

  Reading:
    looop _ state [--json]                 the whole state (a pure read)
    looop _ wait [--json] [--since C] [--timeout S]
                                           block until there is something to do
    looop _ asks [--json]                  pending asks, oldest first
  The mailbox:
    looop _ answer ASK_ID [TEXT...|-] [--force]
    looop _ ask [WORKER] --prompt T [--options a,b] [--timeout S]
                                 a worker's: blocks, prints only the answer
  Changing the world (each writes whole, journals one line, records an event;
  --journal TEXT gives the reason; a body is the words, or stdin with -):
    looop _ goal write ID [BODY...|-]      goals/ID.md
    looop _ goal archive ID                into goals/archive/
    looop _ sensor write NAME [SCRIPT...|-]
                                           sensors/NAME.sh (must start with #!)
    looop _ sensor remove NAME
    looop _ sensor test NAME [--json]      run it once; publishes nothing
    looop _ playbook write [BODY...|-]     PLAYBOOK.md, the old one kept
    looop _ run [--reason T] [--timeout S] [--allow-dangerous] -- COMMAND...
                                           one command, recorded in runs/;
                                           irreversible ones refused unless
                                           --allow-dangerous
    looop _ notify MESSAGE...              tell the human ([notify] command)
  Workers:
    looop _ worker start ID [PROMPT...|-] [--timeout S]
    looop _ worker kill ID                 ends its whole process tree
    looop _ worker list [--json]           also `looop workers`
    looop _ claim NAME / looop _ unclaim NAME
    looop _ cost KIND ID RUNNER USD        and `looop cost [--today]`
    looop _ kill ID                        a worker ending itself

  The invariants:
  - Never take an irreversible step (delete, deploy, pay, push to main,
    write to someone) without the human's yes.
  - Single writer: change goals, sensors, the PLAYBOOK and the journal only
    through these verbs, never by editing the files.
  - Ask, don't guess: when a decision is the human's, ask them
    (`_ notify`, then wait for the goal or PLAYBOOK to change).
  - Answer every ask; a stranded ask (its worker is gone) needs no answer.
"""

IDS = """\
IDS
  Goal, sensor, worker, ask and claim ids are 1 to 64 of A-Z a-z 0-9 . _ -,
  starting with a letter or digit; anything else is refused before a file
  is touched.
"""


def _config_part() -> str:
    lines = ["CONFIG  (environment > config file > default; `looop config set KEY VALUE`)"]
    for knob in config.KNOBS.values():
        default = config.format_value(knob.default) if knob.default is not None else "unset"
        lines.append(f"  {knob.key} = {default}   (${knob.env})")
        lines += textwrap.wrap(knob.help, 76, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


EXIT_MEANINGS = {
    errors.OK: "done",
    errors.FAILED: "failed (one line on stderr says what and why)",
    errors.USAGE: "usage: a bad command line, id or body",
    errors.NOT_RUNNING: "not running (`status`; `_ wait` on pulse-down)",
    errors.UNKNOWN: "unknown (`status`: the lock cannot be examined)",
    errors.CONFIG: "the config is broken (file, line and key are named)",
    errors.TIMED_OUT: "timed out (--timeout)",
    errors.NOT_FOUND: "a command to run was not found",
    errors.INTERRUPTED: "interrupted (^C)",
}


def _exit_part() -> str:
    lines = ["EXIT CODES"] + [f"  {code:>3}  {what}" for code, what in EXIT_MEANINGS.items()]
    return "\n".join(lines) + "\n"


def text() -> str:
    worker = "THE WORKER CONTRACT  (prepended to every worker's prompt)\n" + "".join(
        f"  {line}\n" if line else "\n" for line in CONTRACT.splitlines()
    )
    return "\n".join([INTRO, AGENT, worker, IDS, _config_part(), _exit_part()])
