#!/usr/bin/env python3
"""Offline checks of the CI templates for users (ci/templates/README.md).

Without a GitLab, GitHub or Jenkins server, check what can be checked here:
- every YAML file parses;
- gitlab-ci.yml uses only keywords of GitLab's CI/CD YAML reference, with
  the value types it documents (stages named by jobs exist, allow_failure
  and retry exit codes are integers, rules and artifacts have documented keys);
- github-workflow.yml uses only keys of GitHub's workflow syntax reference
  (on/jobs/steps), each step has exactly one of uses/run, every ${{ }}
  expression names a documented context or function, cron has five fields,
  steps.<id> references name an earlier step;
- the Jenkinsfile is a declarative pipeline with balanced brackets, known
  top-level sections, and a stage with steps;
- every embedded shell script passes `bash -n`, and the shell of the GitHub
  gate step is run with a stand-in gate exiting 0..4 and 130 to check that
  exit codes map as README.md says (1 and 3 fail with different annotations,
  4 passes with a warning);
- all three call the installed vmlat-ci-gate and publish JUnit, the HTML
  report and the Markdown summary.
Prints one line per failed check; exits 1 if any failed.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


def bash_syntax(where, script):
    r = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        error(where, f"bash -n: {r.stderr.strip()}")


# --------------------------------------------------------------------- GitLab
# https://docs.gitlab.com/ee/ci/yaml/ (the CI/CD YAML syntax reference).
GITLAB_GLOBAL = {"default", "include", "stages", "variables", "workflow", "image", "services",
                 "cache", "before_script", "after_script", "spec"}
GITLAB_JOB = {"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
              "dast_configuration", "dependencies", "environment", "extends", "hooks", "identity",
              "id_tokens", "image", "inherit", "interruptible", "manual_confirmation", "needs", "pages",
              "parallel", "release", "resource_group", "retry", "rules", "run", "script", "secrets",
              "services", "stage", "tags", "timeout", "trigger", "variables", "when", "only", "except"}
GITLAB_ARTIFACTS = {"paths", "exclude", "expire_in", "expose_as", "name", "public", "access", "reports",
                    "untracked", "when"}
GITLAB_REPORTS = {"accessibility", "annotations", "api_fuzzing", "browser_performance", "coverage_report",
                  "codequality", "container_scanning", "coverage_fuzzing", "cyclonedx", "dast",
                  "dependency_scanning", "dotenv", "junit", "license_scanning", "load_performance",
                  "metrics", "requirements", "repository_xray", "sast", "secret_detection", "terraform"}
GITLAB_RULE = {"if", "changes", "exists", "allow_failure", "needs", "variables", "when", "interruptible"}
GITLAB_WHEN = {"on_success", "on_failure", "always", "manual", "delayed", "never"}
GITLAB_RETRY_WHEN = {"always", "unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure",
                     "runner_system_failure", "runner_unsupported", "stale_schedule", "job_execution_timeout",
                     "archived_failure", "unmet_prerequisites", "scheduler_failure", "data_integrity_failure"}
GITLAB_DEFAULT_STAGES = {".pre", "build", "test", "deploy", ".post"}


def int_list(value):
    values = value if isinstance(value, list) else [value]
    return values if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else None


def script_lines(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def check_gitlab(path):
    doc = yaml.safe_load(open(path))
    if not isinstance(doc, dict):
        return error(path, "not a mapping")
    stages = doc.get("stages", list(GITLAB_DEFAULT_STAGES))
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        error(path, "stages: must be a list of names")
        stages = []
    for key, value in (doc.get("variables") or {}).items():
        if not isinstance(value, (str, int, float, dict)):
            error(path, f"variables.{key}: must be a string, a number or a {{value, description}} table")
    for rule in (doc.get("workflow") or {}).get("rules", []):
        for k in set(rule) - GITLAB_RULE:
            error(path, f"workflow.rules: unknown key '{k}'")
    jobs = {k: v for k, v in doc.items() if k not in GITLAB_GLOBAL}
    if not jobs:
        error(path, "no job")
    scripts = []
    for name, job in jobs.items():
        where = f"{path}: job '{name}'"
        if not isinstance(job, dict):
            error(where, "must be a mapping (or is an unknown global keyword)")
            continue
        for k in set(job) - GITLAB_JOB:
            error(where, f"unknown keyword '{k}'")
        if name.startswith("."):
            continue
        if "script" not in job and "trigger" not in job and "extends" not in job:
            error(where, "needs script (or trigger/extends)")
        stage = job.get("stage", "test")
        if stage not in stages and stage not in (".pre", ".post"):
            error(where, f"stage '{stage}' is not in stages {stages}")
        for key in ("script", "before_script", "after_script"):
            if key in job:
                lines = script_lines(job[key])
                if lines is None:
                    error(where, f"{key}: must be a string or a list of strings")
                else:
                    scripts.append((f"{where} {key}", "\n".join(lines)))
        if job.get("when") is not None and job["when"] not in GITLAB_WHEN:
            error(where, f"when: '{job['when']}' is not one of {sorted(GITLAB_WHEN)}")
        for rule in job.get("rules", []):
            for k in set(rule) - GITLAB_RULE:
                error(where, f"rules: unknown key '{k}'")
        if "tags" in job and not (isinstance(job["tags"], list) and all(isinstance(t, str) for t in job["tags"])):
            error(where, "tags: must be a list of strings")
        artifacts = job.get("artifacts", {})
        for k in set(artifacts) - GITLAB_ARTIFACTS:
            error(where, f"artifacts: unknown key '{k}'")
        for k in set(artifacts.get("reports", {})) - GITLAB_REPORTS:
            error(where, f"artifacts:reports: unknown report '{k}'")
        if artifacts.get("when") not in (None, "on_success", "on_failure", "always"):
            error(where, "artifacts:when: must be on_success, on_failure or always")
        allow = job.get("allow_failure")
        if isinstance(allow, dict):
            if set(allow) != {"exit_codes"} or int_list(allow["exit_codes"]) is None:
                error(where, "allow_failure: must be a boolean or {exit_codes: integer(s)}")
        elif allow is not None and not isinstance(allow, bool):
            error(where, "allow_failure: must be a boolean or {exit_codes: ...}")
        retry = job.get("retry")
        if isinstance(retry, dict):
            for k in set(retry) - {"max", "when", "exit_codes"}:
                error(where, f"retry: unknown key '{k}'")
            if not (isinstance(retry.get("max", 0), int) and 0 <= retry.get("max", 0) <= 2):
                error(where, "retry:max: must be 0, 1 or 2")
            if "exit_codes" in retry and int_list(retry["exit_codes"]) is None:
                error(where, "retry:exit_codes: must be integer(s)")
            whens = retry.get("when", [])
            for w in whens if isinstance(whens, list) else [whens]:
                if w not in GITLAB_RETRY_WHEN:
                    error(where, f"retry:when: unknown '{w}'")
        elif retry is not None and not (isinstance(retry, int) and 0 <= retry <= 2):
            error(where, "retry: must be 0..2 or a mapping")
        parallel = job.get("parallel")
        if isinstance(parallel, dict):
            matrix = parallel.get("matrix")
            if set(parallel) != {"matrix"} or not isinstance(matrix, list) or not matrix:
                error(where, "parallel: must be a number or {matrix: [variables, ...]}")
            else:
                for entry in matrix:
                    if not isinstance(entry, dict) or not all(
                            isinstance(v, (str, int)) or (isinstance(v, list) and all(isinstance(x, (str, int)) for x in v))
                            for v in entry.values()):
                        error(where, "parallel:matrix: each entry maps variables to a value or a list of values")
        elif parallel is not None and not (isinstance(parallel, int) and 1 <= parallel <= 200):
            error(where, "parallel: must be 1..200 or {matrix: ...}")
        for need in job.get("needs", []) or []:
            name_needed = need.get("job") if isinstance(need, dict) else need
            if isinstance(need, dict) and set(need) - {"job", "artifacts", "optional", "pipeline", "project", "ref", "parallel"}:
                error(where, f"needs: unknown keys {sorted(set(need) - {'job', 'artifacts', 'optional'})}")
            if name_needed not in jobs:
                error(where, f"needs '{name_needed}', which is not a job of this file")

    for where, script in scripts:
        bash_syntax(where, script.replace("\\e", "e"))
    return doc


def gitlab_nightly_promises(path, doc):
    """What gitlab-ci.yml promises (README.md): one job calling vmlat-ci-gate."""
    for name, job in doc.items():
        if name in GITLAB_GLOBAL or name.startswith(".") or not isinstance(job, dict):
            continue
        where = f"{path}: job '{name}'"
        artifacts, allow, retry = job.get("artifacts", {}), job.get("allow_failure"), job.get("retry")
        if "VMLAT_CI_GATE" not in str(job.get("script")):
            error(where, "does not call vmlat-ci-gate")
        if artifacts.get("reports", {}).get("junit") != "vmlat-artifacts/junit.xml":
            error(where, "does not publish vmlat-artifacts/junit.xml as the JUnit report")
        if "vmlat-artifacts/" not in artifacts.get("paths", []) or artifacts.get("when") != "always":
            error(where, "does not keep vmlat-artifacts/ (report.html, summary) as artefacts, always")
        if not isinstance(allow, dict) or int_list(allow.get("exit_codes", [])) != [4]:
            error(where, "allow_failure:exit_codes must be [4] exactly: only an export failure passes")
        if not isinstance(retry, dict) or int_list(retry.get("exit_codes", [])) != [3]:
            error(where, "retry:exit_codes must be [3] exactly: only infrastructure errors are retried")


# --------------------------------------------------------------------- GitHub
# https://docs.github.com/actions/using-workflows/workflow-syntax-for-github-actions
GITHUB_TOP = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
GITHUB_EVENTS = {"branch_protection_rule", "check_run", "check_suite", "create", "delete", "deployment",
                 "deployment_status", "discussion", "discussion_comment", "fork", "gollum", "issue_comment",
                 "issues", "label", "merge_group", "milestone", "page_build", "public", "pull_request",
                 "pull_request_review", "pull_request_review_comment", "pull_request_target", "push",
                 "registry_package", "release", "repository_dispatch", "schedule", "status", "watch",
                 "workflow_call", "workflow_dispatch", "workflow_run"}
GITHUB_INPUT = {"description", "required", "default", "type", "options"}
GITHUB_INPUT_TYPES = {"boolean", "choice", "number", "environment", "string"}
GITHUB_JOB = {"name", "permissions", "needs", "if", "runs-on", "snapshot", "environment", "concurrency",
              "outputs", "env", "defaults", "steps", "timeout-minutes", "strategy", "continue-on-error",
              "container", "services", "uses", "with", "secrets"}
GITHUB_STEP = {"id", "if", "name", "uses", "run", "shell", "with", "env", "continue-on-error",
               "timeout-minutes", "working-directory"}
GITHUB_CONTEXTS = {"github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy",
                   "matrix", "needs", "inputs"}
GITHUB_FUNCTIONS = {"always", "success", "failure", "cancelled", "contains", "startsWith", "endsWith",
                    "format", "join", "toJSON", "fromJSON", "hashFiles"}
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def check_expressions(where, text):
    for expr in EXPRESSION.findall(text):
        stripped = re.sub(r"'[^']*'", "''", expr)
        for name in re.findall(r"(?<![\w.'-])([A-Za-z_][\w-]*)", stripped):
            if name in ("true", "false", "null"):
                continue
            if name not in GITHUB_CONTEXTS and name not in GITHUB_FUNCTIONS:
                error(where, f"expression '${{{{{expr.strip()}}}}}' names unknown context or function '{name}'")


def check_github(path):
    """The workflow syntax of any workflow file; returns the document (or None)."""
    doc = yaml.safe_load(open(path))
    if not isinstance(doc, dict):
        return error(path, "not a mapping")
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in doc:
        doc["on"] = doc.pop(True)
    for k in set(doc) - GITHUB_TOP:
        error(path, f"unknown top-level key '{k}'")
    check_expressions(path, yaml.safe_dump(doc.get("env", {})))
    on = doc.get("on")
    events = on if isinstance(on, dict) else {e: None for e in ([on] if isinstance(on, str) else on or [])}
    for event in events:
        if event not in GITHUB_EVENTS:
            error(path, f"on: unknown event '{event}'")
    for entry in events.get("schedule") or []:
        cron = entry.get("cron", "") if isinstance(entry, dict) else ""
        if len(cron.split()) != 5:
            error(path, f"on.schedule: cron '{cron}' must have five fields")
    inputs = (events.get("workflow_dispatch") or {}).get("inputs", {})
    for name, spec in inputs.items():
        for k in set(spec) - GITHUB_INPUT:
            error(path, f"workflow_dispatch.inputs.{name}: unknown key '{k}'")
        if spec.get("type", "string") not in GITHUB_INPUT_TYPES:
            error(path, f"workflow_dispatch.inputs.{name}: unknown type '{spec.get('type')}'")
    jobs = doc.get("jobs") or {}
    if not jobs:
        error(path, "no jobs")
    for job_id, job in jobs.items():
        where = f"{path}: job '{job_id}'"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", job_id):
            error(where, "job ids are letters, digits, '-' and '_', starting with a letter or '_'")
        for k in set(job) - GITHUB_JOB:
            error(where, f"unknown key '{k}'")
        if "runs-on" not in job and "uses" not in job:
            error(where, "needs runs-on")
        for key in ("env", "runs-on", "if", "strategy"):
            check_expressions(f"{where} {key}", yaml.safe_dump(job.get(key, "")))
        for k in set(job.get("strategy") or {}) - {"matrix", "fail-fast", "max-parallel"}:
            error(where, f"strategy: unknown key '{k}'")
        for need in github_needs(job):
            if need not in jobs:
                error(where, f"needs '{need}', which is not a job of this workflow")
        seen_ids = set()
        for i, step in enumerate(job.get("steps", [])):
            swhere = f"{where} step {i + 1} ({step.get('name') or step.get('uses') or step.get('id')})"
            for k in set(step) - GITHUB_STEP:
                error(swhere, f"unknown key '{k}'")
            if ("uses" in step) == ("run" in step):
                error(swhere, "needs exactly one of uses and run")
            if "uses" in step and not re.fullmatch(r"(\./.+|docker://.+|[\w.-]+/[\w./-]+@[\w./-]+)", step["uses"]):
                error(swhere, f"uses '{step['uses']}' is not owner/repo@ref, ./path or docker://image")
            text = yaml.safe_dump(step)
            check_expressions(swhere, text)
            for ref in re.findall(r"steps\.([\w-]+)\.", text):
                if ref not in seen_ids:
                    error(swhere, f"refers to steps.{ref}, which is not an earlier step's id")
            if "run" in step:
                bash_syntax(swhere, EXPRESSION.sub("x", step["run"]))
            if "id" in step:
                seen_ids.add(step["id"])
    return doc


def github_needs(job):
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs or [])


def github_publishes(path, job_id, job, junit_path):
    """Artefacts and JUnit uploaded, even after a failed step (they matter most then)."""
    where = f"{path}: job '{job_id}'"
    uses = " ".join(s.get("uses", "") for s in job.get("steps", []))
    if "actions/upload-artifact@" not in uses:
        error(where, "does not upload the artefacts (report, JUnit)")
    junit = [s for s in job.get("steps", []) if "junit" in s.get("uses", "").lower()]
    if not junit or junit[0].get("with", {}).get("report_paths") != junit_path:
        error(where, f"does not publish the JUnit report {junit_path}")
    for s in job.get("steps", []):
        if "uses" in s and s.get("if") != "always()" and "checkout" not in s["uses"]:
            error(where, f"step {s['uses']} must run if: always() (artefacts of a failed gate matter most)")


def github_nightly_promises(path, doc):
    gate_step = None
    for job_id, job in (doc.get("jobs") or {}).items():
        github_publishes(path, job_id, job, "vmlat-artifacts/junit.xml")
        for i, step in enumerate(job.get("steps", [])):
            if "VMLAT_CI_GATE" in step.get("run", ""):
                gate_step = (f"{path}: job '{job_id}' step {i + 1}", step)
    if gate_step is None:
        error(path, "no step calls $VMLAT_CI_GATE")
    else:
        check_github_exit_codes(*gate_step, "VMLAT_CI_GATE", GATE_EXPECTED, push=True)


# What a step exits with, and the annotation it prints, for each exit code of
# the script it calls (README.md's table).
GATE_EXPECTED = {0: (0, None), 1: (1, "::error title=vmlat latency gate::"),
                 3: (3, "::error title=vmlat infrastructure error::"), 4: (0, "::warning title=vmlat export failed::"),
                 2: (2, "::error"), 130: (130, "::error")}


def check_github_exit_codes(where, step, variable, expected, push=False, summary=True):
    """Runs the step's shell with a stand-in for the script named by $variable exiting each code."""
    if summary and "$GITHUB_STEP_SUMMARY" not in step["run"]:
        error(where, "does not write the Markdown summary to $GITHUB_STEP_SUMMARY")
    with tempfile.TemporaryDirectory() as tmp:
        gate = os.path.join(tmp, "gate")
        with open(gate, "w") as f:
            f.write('#!/bin/sh\necho "args: $*"\nexit "$STAND_IN_EXIT"\n')
        os.chmod(gate, 0o755)
        script = EXPRESSION.sub("x", step["run"])
        for code, (want_rc, want_annotation) in expected.items():
            env = dict(os.environ, STAND_IN_EXIT=str(code), VMLAT_PLAN="p.toml", VMLAT_HOST="lab1",
                       VMLAT_TOLERANCE="10%", VMLAT_STATE_DIR=tmp, VMLAT_PUSHGATEWAY="",
                       GITHUB_OUTPUT=os.path.join(tmp, "out"), GITHUB_STEP_SUMMARY=os.path.join(tmp, "summary"))
            env[variable] = gate
            r = subprocess.run(["bash", "-e", "-c", script], env=env, text=True, capture_output=True, cwd=tmp)
            if r.returncode != want_rc:
                error(where, f"gate exit {code}: the step exits {r.returncode}, README.md says {want_rc}")
            if want_annotation and want_annotation not in r.stdout:
                error(where, f"gate exit {code}: no '{want_annotation}' annotation")
            if code == 0 and "::" in r.stdout:
                error(where, "gate exit 0: an annotation was printed")
            if f"exit-code={code}" not in open(env["GITHUB_OUTPUT"]).read():
                error(where, f"gate exit {code}: exit-code not written to $GITHUB_OUTPUT")
            if "--push" in r.stdout:
                error(where, "an empty VMLAT_PUSHGATEWAY still passed --push")
        if not push:
            return
        env["VMLAT_PUSHGATEWAY"] = "http://127.0.0.1:9091"
        env["STAND_IN_EXIT"] = "0"
        r = subprocess.run(["bash", "-e", "-c", script], env=env, text=True, capture_output=True, cwd=tmp)
        if "--push http://127.0.0.1:9091" not in r.stdout:
            error(where, "VMLAT_PUSHGATEWAY is not passed as --push")


# --------------------------------------------------------------------- Jenkins
JENKINS_SECTIONS = {"agent", "environment", "options", "parameters", "triggers", "tools", "stages", "post",
                    "libraries", "input", "when"}


def strip_groovy(text):
    """The text with comments and string contents removed (brackets counted outside them)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            i = text.find("\n", i) if text.find("\n", i) != -1 else n
        elif text.startswith("/*", i):
            i = text.find("*/", i) + 2 if text.find("*/", i) != -1 else n
        elif text.startswith("'''", i) or text.startswith('"""', i):
            end = text.find(text[i:i + 3], i + 3)
            out.append('""')
            i = end + 3 if end != -1 else n
        elif text[i] in "'\"":
            quote, j = text[i], i + 1
            while j < n and text[j] != quote:
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def check_jenkins(path):
    text = open(path).read()
    code = strip_groovy(text)
    stack = []
    for lineno, line in enumerate(code.splitlines(), 1):
        for ch in line:
            if ch in "([{":
                stack.append((ch, lineno))
            elif ch in ")]}":
                if not stack or "([{"[")]}".index(ch)] != stack[-1][0]:
                    return error(path, f"line {lineno}: unbalanced '{ch}'")
                stack.pop()
    if stack:
        return error(path, f"line {stack[-1][1]}: '{stack[-1][0]}' never closed")
    body = re.search(r"^\s*pipeline\s*\{", code, re.M)
    if not body:
        return error(path, "not a declarative pipeline (no 'pipeline {')")
    # The sections directly inside pipeline { }.
    depth, sections, i = 0, [], body.end()
    word = re.compile(r"[A-Za-z_]\w*")
    while i < len(code) and depth >= 0:
        ch = code[i]
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif depth == 0:
            m = word.match(code, i)
            if m and not (sections and sections[-1] == "agent" and m.group() in ("any", "none")):
                sections.append(m.group())
            if m:
                i = m.end()
                continue
        i += 1
    for s in sections:
        if s not in JENKINS_SECTIONS:
            error(path, f"unknown pipeline section '{s}'")
    for s in ("agent", "stages"):
        if s not in sections:
            error(path, f"pipeline has no '{s}'")
    if not re.search(r"stage\(\s*\"\"\s*\)\s*\{\s*(agent\s*\{[^{}]*\}\s*)?(environment\s*\{[^{}]*\}\s*)?steps\s*\{", code):
        error(path, "no stage('...') { steps { ... } }")
    for script in re.findall(r"script: '''(.*?)'''", text, re.S):
        bash_syntax(f"{path} sh step", script.replace("\\\n", "\n").replace("\\\\", "\\"))
    return text


def jenkins_verdicts(path, text, steps):
    """The steps a Jenkinsfile must use, and the exit-code map of README.md applied."""
    for step in steps:
        if step not in text:
            error(path, f"does not use {step.rstrip('(')}")
    # The mapping of README.md: each code to its own build result.
    for code_value, result in (("1", "FAILURE"), ("3", "NOT_BUILT"), ("4", "UNSTABLE"), ("130", "ABORTED")):
        if not re.search(rf"'{code_value}'\s*:\s*\['{result}'", text):
            error(path, f"exit {code_value} is not mapped to {result}")
    if "catchError(buildResult: verdict[0]" not in text or "unstable(verdict[1])" not in text:
        error(path, "the verdict map is not applied (catchError / unstable)")


# --------------------------------------------------------------------- Fan-out
# The fan-out forms (README.md, "Fan-out"): a job per lab host, then one job
# that merges and gates. What must hold for that to work: the matrix's host
# names are where each job runs (runner tag, runner label, agent label) and
# what it measures (--host), every job's run reaches the gate job (artefacts,
# stash), the gate job depends on the matrix and runs after a failed host,
# and every command called exists.
FANOUT_INSTALLED = "/usr/share/vmlat/ci/vmlat-fanout"
MEASURE_CALL = re.compile(r'"\$VMLAT_FANOUT" measure "\$VMLAT_PLAN" "\$VMLAT_HOST"')
GATE_CALL = re.compile(r'"\$VMLAT_FANOUT" gate (\S+)')
HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a plan host name (docs/plan-format.md)
CLI_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../core/cli/main.cpp")


def check_hosts(where, hosts):
    if not hosts:
        error(where, "the matrix names no host")
    for h in hosts:
        if not isinstance(h, str) or not HOST_NAME.fullmatch(h):
            error(where, f"matrix host '{h}' is not a plan host name")
    if len(set(map(str, hosts))) != len(hosts):
        error(where, f"a host is listed twice in the matrix {hosts}: its share would be measured twice")


def cli_commands(main_cpp):
    """command -> its options, from the CLI's table of commands (core/cli/main.cpp)."""
    text = open(main_cpp).read()
    table = text[text.index("const Command kCommands[] = {"):]
    table = table[:table.index("\n};")]
    return {m.group(1): set(re.findall(r'"(--[a-z-]+)"', m.group(2)))
            for m in re.finditer(r'\{"([a-z-]+)",\s*"[^"]*",\s*"(?:[^"\\]|\\.)*",\s*\{([^{}]*)\}', table)}


def check_fanout_script(templates, cli_source):
    """vmlat-fanout: its modes, and each vmlat command and option it runs (when the CLI source is at hand)."""
    path = os.path.join(templates, "vmlat-fanout")
    text = open(path).read()
    bash_syntax("vmlat-fanout", text)
    modes = set(re.findall(r"^  ([a-z]+)\)$", text, re.M))
    options = set(re.findall(r"^#\s+(--[a-z-]+)", text, re.M))
    calls, command = [], None
    for line in text.splitlines():
        line = line.split(" # ")[0]
        m = re.search(r'"\$vmlat" ([a-z][a-z-]*)', line) or re.search(r"\bargs=\(([a-z][a-z-]*)", line)
        if m:
            command = m.group(1)
            calls.append((command, set(re.findall(r"(?<![\w-])(--[a-z-]+)", line))))
        elif "args+=(" in line and command:
            calls.append((command, set(re.findall(r"(?<![\w-])(--[a-z-]+)", line))))
    if not {c for c, _ in calls} >= {"run", "gate", "report"}:
        error(path, f"does not run vmlat run, gate and report (runs {sorted({c for c, _ in calls})})")
    if os.path.exists(cli_source):
        cli = cli_commands(cli_source)
        for c, opts in calls:
            if c not in cli:
                error(path, f"runs 'vmlat {c}', which is not a vmlat command")
            elif opts - cli[c]:
                error(path, f"runs 'vmlat {c}' with {sorted(opts - cli[c])}, not options of it")
    r = subprocess.run(["bash", path, "--help"], capture_output=True, text=True)
    if r.returncode != 0 or "measure" not in r.stdout:
        error(path, f"--help exits {r.returncode} without the usage")
    return modes, options


def check_fanout_calls(path, text, modes, options):
    """Every `$VMLAT_FANOUT MODE ... --option` of a template exists in the script."""
    for mode, rest in re.findall(r'"\$VMLAT_FANOUT" ([a-z]+)([^\n]*)', text):
        if mode not in modes:
            error(path, f"calls vmlat-fanout {mode}, which is not one of its modes {sorted(modes)}")
        for opt in re.findall(r"(?<![\w-])(--[a-z-]+)", rest):
            if opt not in options:
                error(path, f"calls vmlat-fanout with {opt}, which it does not take")


def gitlab_fanout_promises(path, doc, modes, options):
    check_fanout_calls(path, open(path).read(), modes, options)
    if (doc.get("variables") or {}).get("VMLAT_FANOUT") != FANOUT_INSTALLED:
        error(path, f"VMLAT_FANOUT is not the installed {FANOUT_INSTALLED}")
    stages = doc.get("stages", [])
    jobs = {k: v for k, v in doc.items() if k not in GITLAB_GLOBAL and not k.startswith(".") and isinstance(v, dict)}
    matrix_jobs = [k for k, v in jobs.items() if isinstance(v.get("parallel"), dict)]
    if len(matrix_jobs) != 1:
        return error(path, f"one measure job with parallel:matrix expected, found {matrix_jobs}")
    name = matrix_jobs[0]
    job, where = jobs[name], f"{path}: job '{name}'"
    hosts = []
    for entry in job["parallel"].get("matrix") or []:
        value = entry.get("VMLAT_HOST") if isinstance(entry, dict) else None
        if value is None:
            error(where, "a matrix entry without VMLAT_HOST (the plan host the job measures)")
        hosts += value if isinstance(value, list) else [value]
    check_hosts(where, hosts)
    if not any(re.search(r"\$\{?VMLAT_HOST\}?", t) for t in job.get("tags", [])):
        error(where, "its runner tags do not name its host ($VMLAT_HOST): a host's share could be measured on another runner")
    script = "\n".join(script_lines(job.get("script", [])) or [])
    if not MEASURE_CALL.search(script):
        error(where, 'does not run "$VMLAT_FANOUT" measure "$VMLAT_PLAN" "$VMLAT_HOST"')
    artifacts = job.get("artifacts", {})
    if "vmlat-fanout/" not in artifacts.get("paths", []) or artifacts.get("when") != "always":
        error(where, "does not keep vmlat-fanout/ (its run, for the gate job) as artefacts, always")
    if int_list((job.get("retry") or {}).get("exit_codes", [])) != [3]:
        error(where, "retry:exit_codes must be [3] exactly: only infrastructure errors are measured again")
    if int_list((job.get("allow_failure") or {}).get("exit_codes", []) if isinstance(job.get("allow_failure"), dict) else []) != [4]:
        error(where, "allow_failure:exit_codes must be [4] exactly")
    gates = [k for k, v in jobs.items() if GATE_CALL.search("\n".join(script_lines(v.get("script", [])) or []))]
    if len(gates) != 1:
        return error(path, f"one job running vmlat-fanout gate expected, found {gates}")
    gname = gates[0]
    gate, gwhere = jobs[gname], f"{path}: job '{gname}'"
    if stages.index(gate.get("stage", "test")) <= stages.index(job.get("stage", "test")) if (
            gate.get("stage", "test") in stages and job.get("stage", "test") in stages) else True:
        error(gwhere, "its stage does not come after the measure job's")
    needs = {(n.get("job") if isinstance(n, dict) else n): (n.get("artifacts", True) if isinstance(n, dict) else True)
             for n in gate.get("needs", []) or []}
    if needs.get(name) is not True:
        error(gwhere, f"does not need '{name}' with its artefacts: the runs would not reach it")
    if gate.get("when") != "always":
        error(gwhere, "when: always is missing: a failed host's job would skip the gate, and nothing would say what was not measured")
    directory = GATE_CALL.search("\n".join(script_lines(gate.get("script", [])) or [])).group(1)
    if not directory.startswith("vmlat-fanout/"):
        error(gwhere, f"gates {directory}, not the measure jobs' artefacts (vmlat-fanout/)")
    artifacts = gate.get("artifacts", {})
    if artifacts.get("reports", {}).get("junit") != "vmlat-gate/junit.xml" or \
            artifacts.get("reports", {}).get("dotenv") != "vmlat-gate/verdict.env":
        error(gwhere, "does not publish vmlat-gate/junit.xml (JUnit) and vmlat-gate/verdict.env (dotenv)")
    if "vmlat-gate/" not in artifacts.get("paths", []) or artifacts.get("when") != "always":
        error(gwhere, "does not keep vmlat-gate/ (report, summary) as artefacts, always")
    if 3 in (int_list((gate.get("retry") or {}).get("exit_codes", [])) or []) if isinstance(gate.get("retry"), dict) else False:
        error(gwhere, "retries exit 3: the gate measures nothing, a retry cannot bring a host's run")


def github_fanout_promises(path, doc, modes, options):
    check_fanout_calls(path, open(path).read(), modes, options)
    jobs = doc.get("jobs") or {}
    if (doc.get("env") or {}).get("VMLAT_FANOUT") != FANOUT_INSTALLED:
        error(path, f"env.VMLAT_FANOUT is not the installed {FANOUT_INSTALLED}")
    matrix_jobs = [k for k, v in jobs.items() if "host" in ((v.get("strategy") or {}).get("matrix") or {})]
    if len(matrix_jobs) != 1:
        return error(path, f"one measure job with strategy.matrix.host expected, found {matrix_jobs}")
    mid = matrix_jobs[0]
    job, where = jobs[mid], f"{path}: job '{mid}'"
    check_hosts(where, job["strategy"]["matrix"]["host"])
    if job["strategy"].get("fail-fast") is not False:
        error(where, "strategy.fail-fast must be false: a failing host must not cancel the others' measurements")
    labels = job.get("runs-on", [])
    if not any("matrix.host" in str(label) for label in (labels if isinstance(labels, list) else [labels])):
        error(where, "runs-on does not name the host (${{ matrix.host }}): a host's share could be measured on another runner")
    if (job.get("env") or {}).get("VMLAT_HOST", "").replace(" ", "") != "${{matrix.host}}":
        error(where, "env.VMLAT_HOST is not ${{ matrix.host }}")
    steps = job.get("steps", [])
    measure = [s for s in steps if MEASURE_CALL.search(s.get("run", ""))]
    if len(measure) != 1:
        error(where, 'no step runs "$VMLAT_FANOUT" measure "$VMLAT_PLAN" "$VMLAT_HOST"')
    else:
        check_github_exit_codes(f"{where} measure step", measure[0], "VMLAT_FANOUT", GATE_EXPECTED, summary=False)
    uploads = [s for s in steps if "actions/upload-artifact@" in s.get("uses", "")]
    prefix = None
    if len(uploads) != 1 or uploads[0].get("if") != "always()" or "matrix.host" not in str(uploads[0].get("with", {}).get("name")):
        error(where, "does not upload its run, always, as an artefact named after its host")
    else:
        prefix = str(uploads[0]["with"]["name"]).split("${{")[0]
        if uploads[0]["with"].get("path") != "vmlat-fanout/runs/":
            error(where, "uploads something else than its run (vmlat-fanout/runs/)")
    gates = [k for k, v in jobs.items() if mid in github_needs(v)]
    if len(gates) != 1:
        return error(path, f"one gate job that needs '{mid}' expected, found {gates}")
    gid = gates[0]
    gate, gwhere = jobs[gid], f"{path}: job '{gid}'"
    condition = str(gate.get("if", ""))
    if "cancelled()" not in condition and "always()" not in condition:
        error(gwhere, "runs only when every host succeeded (no if: !cancelled()): a failed host's missing cells would go unjudged")
    downloads = [s for s in gate.get("steps", []) if "actions/download-artifact@" in s.get("uses", "")]
    into = None
    if len(downloads) != 1 or prefix is None or downloads[0].get("with", {}).get("pattern") != prefix + "*":
        error(gwhere, f"does not download every host's run (pattern {prefix}*)")
    else:
        into = downloads[0]["with"].get("path")
    gate_steps = [s for s in gate.get("steps", []) if GATE_CALL.search(s.get("run", ""))]
    if len(gate_steps) != 1:
        error(gwhere, "no step runs $VMLAT_FANOUT gate")
    else:
        if into is not None and GATE_CALL.search(gate_steps[0]["run"]).group(1) != into:
            error(gwhere, f"gates {GATE_CALL.search(gate_steps[0]['run']).group(1)}, not the downloaded runs in {into}")
        check_github_exit_codes(f"{gwhere} gate step", gate_steps[0], "VMLAT_FANOUT", GATE_EXPECTED)
    github_publishes(path, gid, gate, "vmlat-gate/junit.xml")


def jenkins_fanout_promises(path, text, modes, options):
    check_fanout_calls(path, text, modes, options)
    if f"VMLAT_FANOUT = '{FANOUT_INSTALLED}'" not in text:
        error(path, f"VMLAT_FANOUT is not the installed {FANOUT_INSTALLED}")
    host_stage = re.compile(r"stage\('([^']+)'\)\s*\{\s*agent\s*\{\s*label\s*'([^']+)'\s*\}\s*"
                            r"environment\s*\{\s*VMLAT_HOST\s*=\s*'([^']+)'\s*\}\s*steps\s*\{\s*script\s*\{\s*vmlatMeasure\(\)")
    found = list(host_stage.finditer(text))
    hosts = [m.group(3) for m in found]
    check_hosts(path, hosts)
    for m in found:
        if m.group(1) != m.group(3) or m.group(2) != f"vmlat-{m.group(3)}":
            error(path, f"stage '{m.group(1)}' measures VMLAT_HOST '{m.group(3)}' on agent '{m.group(2)}': "
                        "the stage, the agent label vmlat-<host> and VMLAT_HOST must name one host")
    parallel = text.find("parallel {")
    gate = re.search(r"stage\('Gate'\)\s*\{\s*agent\s*\{\s*label\s*'[^']+'\s*\}", text)
    if found and (parallel < 0 or parallel > found[0].start()):
        error(path, "the host stages are not parallel")
    if not gate or (found and gate.start() < found[-1].end()):
        error(path, "no stage('Gate') with an agent after the host stages")
    listed = re.search(r"VMLAT_HOSTS = '([^']*)'", text)
    if not listed or sorted(listed.group(1).split()) != sorted(hosts):
        error(path, f"VMLAT_HOSTS ({listed.group(1) if listed else 'missing'}) is not the hosts of the stages {hosts}: "
                    "the gate would not unstash every run")
    measure = re.search(r"def vmlatMeasure\(\) \{(.*?)\n\}", text, re.S)
    if not measure or not MEASURE_CALL.search(measure.group(1)):
        error(path, 'vmlatMeasure() does not run "$VMLAT_FANOUT" measure "$VMLAT_PLAN" "$VMLAT_HOST"')
    elif 'stash(name: "vmlat-run-${env.VMLAT_HOST}", includes: \'vmlat-fanout/runs/**\'' not in measure.group(1) or \
            "catchError(buildResult: 'SUCCESS', stageResult: 'FAILURE')" not in measure.group(1):
        error(path, "vmlatMeasure() does not stash its run as vmlat-run-<host>, or decides the build's result itself")
    if 'unstash(name: "vmlat-run-${host}")' not in text or "env.VMLAT_HOSTS.split(' ')" not in text:
        error(path, "the gate stage does not unstash every host's run")
    call = GATE_CALL.search(text)
    if not call or call.group(1) != "vmlat-fanout/runs":
        error(path, "the gate stage does not gate the unstashed runs (vmlat-fanout/runs)")
    jenkins_verdicts(path, text, ["junit(", "archiveArtifacts(", "publishHTML(", "vmlat-gate/junit.xml", "summary.md"])


# Broken copies the checks must reject (--self-test): (file, text, replacement, why).
MUTATIONS = [
    ("gitlab-ci.yml", "  timeout: 3h", "  timeout: 3h\n  retries: 2", "unknown GitLab keyword"),
    ("gitlab-ci.yml", "      - 4\n", "      - 1\n      - 4\n", "a gate failure allowed to fail"),
    ("gitlab-ci.yml", "      - 3\n", "      - 1\n", "regressions retried"),
    ("gitlab-ci.yml", "  stage: gate", "  stage: measure", "a stage not in stages"),
    ("gitlab-ci.yml", "      junit: vmlat-artifacts/junit.xml", "      junit_xml: vmlat-artifacts/junit.xml",
     "unknown report type"),
    ("github-workflow.yml", "        shell: bash", "        shell: bash\n        timeout: 5", "unknown step key"),
    ("github-workflow.yml", "            4) echo", "            4) exit 4; echo", "export failure fails the job"),
    ("github-workflow.yml", "title=vmlat infrastructure error", "title=vmlat latency gate",
     "infra error annotated as a regression"),
    ("github-workflow.yml", "${{ vars.VMLAT_PUSHGATEWAY }}", "${{ variables.VMLAT_PUSHGATEWAY }}",
     "unknown expression context"),
    ("github-workflow.yml", '"17 2 * * *"', '"17 2 * *"', "cron with four fields"),
    ("github-workflow.yml", "        if: always()\n        uses: actions/upload-artifact", "        uses: actions/upload-artifact",
     "artefacts only on success"),
    ("Jenkinsfile", "  triggers { cron('H 2 * * *') }", "  triggers { cron('H 2 * * *') ", "unbalanced brace"),
    ("Jenkinsfile", "['NOT_BUILT'", "['FAILURE'", "infra error as FAILURE"),
    ("Jenkinsfile", "  options {", "  settings {", "unknown pipeline section"),
    ("vmlat-ci-gate", "esac\nlog", "log", "shell syntax error"),
    ("gitlab-ci-fanout.yml", "  when: always\n  needs:", "  needs:", "the gate skipped after a failed host"),
    ("gitlab-ci-fanout.yml", "    - job: vmlat-measure\n", "    - job: vmlat-measures\n", "the gate needs no measure job"),
    ("gitlab-ci-fanout.yml", "    - vmlat-$VMLAT_HOST", "    - vmlat-lab", "runner tags that do not name the host"),
    ("gitlab-ci-fanout.yml", "          - lab2\n", "          - lab1\n", "a host listed twice"),
    ("gitlab-ci-fanout.yml", "gate vmlat-fanout/runs", "gate runs", "the gate reads something else than the artefacts"),
    ("gitlab-ci-fanout.yml", "--this-host --artifacts", "--here --artifacts", "an option vmlat-fanout does not take"),
    ("github-workflow-fanout.yml", "    needs: measure\n", "", "the gate job does not depend on the matrix"),
    ("github-workflow-fanout.yml", "    if: ${{ !cancelled() }}\n", "", "the gate skipped after a failed host"),
    ("github-workflow-fanout.yml", '"vmlat-${{ matrix.host }}"', '"vmlat-lab"', "runs-on that does not name the host"),
    ("github-workflow-fanout.yml", "pattern: vmlat-run-*", "pattern: vmlat-runs-*", "the download pattern matches no upload"),
    ("github-workflow-fanout.yml", "fail-fast: false", "fail-fast: true", "one failing host cancels the others"),
    ("github-workflow-fanout.yml", "            3) echo \"::error title=vmlat infrastructure error::a cell of the plan",
     "            3) echo \"::error title=vmlat latency gate::a cell of the plan", "a missing host annotated as a regression"),
    ("Jenkinsfile.fanout", "agent { label 'vmlat-lab2' }", "agent { label 'vmlat-lab1' }", "lab2 measured on lab1's agent"),
    ("Jenkinsfile.fanout", "VMLAT_HOSTS = 'lab1 lab2'", "VMLAT_HOSTS = 'lab1'", "lab2's run never unstashed"),
    ("Jenkinsfile.fanout", "['NOT_BUILT'", "['FAILURE'", "a missing cell as FAILURE"),
    ("Jenkinsfile.fanout", "catchError(buildResult: 'SUCCESS', stageResult: 'FAILURE')",
     "catchError(buildResult: 'FAILURE', stageResult: 'FAILURE')", "a host stage decides the build"),
    ("vmlat-fanout", '--junit "$artifacts/junit.xml" --markdown', '--junit "$artifacts/junit.xml" --md', "a vmlat option that does not exist"),
    ("vmlat-fanout", "  gate)\n", "  merge)\n", "a mode the templates call is gone"),
]


def self_test(templates):
    """Each mutation of a copy of the templates must be reported."""
    import shutil
    failures = 0
    for name, old, new, why in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "t")
            shutil.copytree(templates, copy)
            target = os.path.join(copy, name)
            text = open(target).read()
            if old not in text:
                print(f"self-test: '{old}' not found in {name}: update MUTATIONS")
                failures += 1
                continue
            open(target, "w").write(text.replace(old, new, 1))
            errors.clear()
            run_checks(copy, changed=name)
            if not errors:
                print(f"self-test: not caught: {why} ({name})")
                failures += 1
    errors.clear()
    print(f"check_ci_templates --self-test: {len(MUTATIONS) - failures}/{len(MUTATIONS)} broken copies rejected")
    return failures


def run_checks(templates, changed=None):
    """Every check; with `changed` (a file name), only those that read that file (the self-test)."""
    def wanted(*names):
        return changed is None or changed in names

    for name in sorted(os.listdir(templates)):
        if name.endswith((".yml", ".yaml")) and wanted(name):
            try:
                yaml.safe_load(open(os.path.join(templates, name)))
            except yaml.YAMLError as e:
                error(name, f"YAML: {e}")
    if wanted("gitlab-ci.yml"):
        doc = check_gitlab(os.path.join(templates, "gitlab-ci.yml"))
        if doc:
            gitlab_nightly_promises(os.path.join(templates, "gitlab-ci.yml"), doc)
    if wanted("github-workflow.yml"):
        doc = check_github(os.path.join(templates, "github-workflow.yml"))
        if doc:
            github_nightly_promises(os.path.join(templates, "github-workflow.yml"), doc)
    if wanted("Jenkinsfile"):
        text = check_jenkins(os.path.join(templates, "Jenkinsfile"))
        if text:
            jenkins_verdicts(os.path.join(templates, "Jenkinsfile"), text,
                             ["junit(", "archiveArtifacts(", "publishHTML(", "VMLAT_CI_GATE", "vmlat-artifacts/junit.xml",
                              "job-summary.md"])
    if wanted("vmlat-ci-gate"):
        bash_syntax("vmlat-ci-gate", open(os.path.join(templates, "vmlat-ci-gate")).read())
    fanout = ("vmlat-fanout", "gitlab-ci-fanout.yml", "github-workflow-fanout.yml", "Jenkinsfile.fanout")
    if wanted(*fanout):
        modes, options = check_fanout_script(templates, CLI_SOURCE)
    if wanted("vmlat-fanout", "gitlab-ci-fanout.yml"):
        doc = check_gitlab(os.path.join(templates, "gitlab-ci-fanout.yml"))
        if doc:
            gitlab_fanout_promises(os.path.join(templates, "gitlab-ci-fanout.yml"), doc, modes, options)
    if wanted("vmlat-fanout", "github-workflow-fanout.yml"):
        doc = check_github(os.path.join(templates, "github-workflow-fanout.yml"))
        if doc:
            github_fanout_promises(os.path.join(templates, "github-workflow-fanout.yml"), doc, modes, options)
    if wanted("vmlat-fanout", "Jenkinsfile.fanout"):
        text = check_jenkins(os.path.join(templates, "Jenkinsfile.fanout"))
        if text:
            jenkins_fanout_promises(os.path.join(templates, "Jenkinsfile.fanout"), text, modes, options)
    if wanted("README.md"):
        readme = open(os.path.join(templates, "README.md")).read()
        for name in ("gitlab-ci.yml", "github-workflow.yml", "Jenkinsfile", "vmlat-ci-gate", *fanout):
            if name not in readme:
                error("README.md", f"does not document {name}")


def main():
    args = sys.argv[1:]
    selftest = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    templates = args[0] if args else os.path.join(os.path.dirname(__file__), "../../ci/templates")
    run_checks(templates)
    for line in errors:
        print(line)
    print(f"check_ci_templates: {len(errors)} problem(s)")
    if errors:
        return 1
    return 1 if selftest and self_test(templates) else 0


if __name__ == "__main__":
    sys.exit(main())
