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

        # What the template promises (README.md).
        if "vmlat-ci-gate" not in " ".join(s for _, s in scripts) and "VMLAT_CI_GATE" not in str(job.get("script")):
            error(where, "does not call vmlat-ci-gate")
        if artifacts.get("reports", {}).get("junit") != "vmlat-artifacts/junit.xml":
            error(where, "does not publish vmlat-artifacts/junit.xml as the JUnit report")
        if "vmlat-artifacts/" not in artifacts.get("paths", []) or artifacts.get("when") != "always":
            error(where, "does not keep vmlat-artifacts/ (report.html, summary) as artefacts, always")
        if not isinstance(allow, dict) or int_list(allow.get("exit_codes", [])) != [4]:
            error(where, "allow_failure:exit_codes must be [4] exactly: only an export failure passes")
        if not isinstance(retry, dict) or int_list(retry.get("exit_codes", [])) != [3]:
            error(where, "retry:exit_codes must be [3] exactly: only infrastructure errors are retried")
    for where, script in scripts:
        bash_syntax(where, script.replace("\\e", "e"))
    return doc


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
    doc = yaml.safe_load(open(path))
    if not isinstance(doc, dict):
        return error(path, "not a mapping")
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in doc:
        doc["on"] = doc.pop(True)
    for k in set(doc) - GITHUB_TOP:
        error(path, f"unknown top-level key '{k}'")
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
    gate_step = None
    for job_id, job in jobs.items():
        where = f"{path}: job '{job_id}'"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", job_id):
            error(where, "job ids are letters, digits, '-' and '_', starting with a letter or '_'")
        for k in set(job) - GITHUB_JOB:
            error(where, f"unknown key '{k}'")
        if "runs-on" not in job and "uses" not in job:
            error(where, "needs runs-on")
        check_expressions(where, yaml.safe_dump(job.get("env", {})))
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
                if "VMLAT_CI_GATE" in step["run"]:
                    gate_step = (swhere, step, job.get("env", {}))
            if "id" in step:
                seen_ids.add(step["id"])
        uses = " ".join(s.get("uses", "") for s in job.get("steps", []))
        if "actions/upload-artifact@" not in uses:
            error(where, "does not upload the artefacts (report, JUnit)")
        if "junit" not in uses.lower():
            error(where, "does not publish the JUnit report")
        for s in job.get("steps", []):
            if "uses" in s and s.get("if") != "always()" and "checkout" not in s["uses"]:
                error(where, f"step {s['uses']} must run if: always() (artefacts of a failed gate matter most)")
    if gate_step is None:
        error(path, "no step calls $VMLAT_CI_GATE")
    else:
        check_github_exit_codes(*gate_step)
    return doc


def check_github_exit_codes(where, step, job_env):
    """Runs the gate step's shell with a stand-in gate exiting each code."""
    if "$GITHUB_STEP_SUMMARY" not in step["run"]:
        error(where, "does not write the Markdown summary to $GITHUB_STEP_SUMMARY")
    expected = {0: (0, None), 1: (1, "::error title=vmlat latency gate::"),
                3: (3, "::error title=vmlat infrastructure error::"), 4: (0, "::warning title=vmlat export failed::"),
                2: (2, "::error"), 130: (130, "::error")}
    with tempfile.TemporaryDirectory() as tmp:
        gate = os.path.join(tmp, "gate")
        with open(gate, "w") as f:
            f.write('#!/bin/sh\necho "args: $*"\nexit "$STAND_IN_EXIT"\n')
        os.chmod(gate, 0o755)
        script = EXPRESSION.sub("x", step["run"])
        for code, (want_rc, want_annotation) in expected.items():
            env = dict(os.environ, VMLAT_CI_GATE=gate, STAND_IN_EXIT=str(code), VMLAT_PLAN="p.toml",
                       VMLAT_TOLERANCE="10%", VMLAT_STATE_DIR=tmp, VMLAT_PUSHGATEWAY="",
                       GITHUB_OUTPUT=os.path.join(tmp, "out"), GITHUB_STEP_SUMMARY=os.path.join(tmp, "summary"))
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
            if m:
                sections.append(m.group())
                i = m.end()
                continue
        i += 1
    for s in sections:
        if s not in JENKINS_SECTIONS:
            error(path, f"unknown pipeline section '{s}'")
    for s in ("agent", "stages"):
        if s not in sections:
            error(path, f"pipeline has no '{s}'")
    if not re.search(r"stage\(\s*\"\"\s*\)\s*\{\s*steps\s*\{", code):
        error(path, "no stage('...') { steps { ... } }")
    for step in ("junit(", "archiveArtifacts(", "publishHTML(", "VMLAT_CI_GATE", "vmlat-artifacts/junit.xml",
                 "job-summary.md"):
        if step not in text:
            error(path, f"does not use {step.rstrip('(')}")
    # The mapping of README.md: each code to its own build result.
    for code_value, result in (("1", "FAILURE"), ("3", "NOT_BUILT"), ("4", "UNSTABLE"), ("130", "ABORTED")):
        if not re.search(rf"'{code_value}'\s*:\s*\['{result}'", text):
            error(path, f"exit {code_value} is not mapped to {result}")
    if "catchError(buildResult: verdict[0]" not in text or "unstable(verdict[1])" not in text:
        error(path, "the verdict map is not applied (catchError / unstable)")
    for script in re.findall(r"script: '''(.*?)'''", text, re.S):
        bash_syntax(f"{path} sh step", script.replace("\\\n", "\n").replace("\\\\", "\\"))


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
            run_checks(copy)
            if not errors:
                print(f"self-test: not caught: {why} ({name})")
                failures += 1
    errors.clear()
    print(f"check_ci_templates --self-test: {len(MUTATIONS) - failures}/{len(MUTATIONS)} broken copies rejected")
    return failures


def run_checks(templates):
    for name in sorted(os.listdir(templates)):
        if name.endswith((".yml", ".yaml")):
            try:
                yaml.safe_load(open(os.path.join(templates, name)))
            except yaml.YAMLError as e:
                error(name, f"YAML: {e}")
    check_gitlab(os.path.join(templates, "gitlab-ci.yml"))
    check_github(os.path.join(templates, "github-workflow.yml"))
    check_jenkins(os.path.join(templates, "Jenkinsfile"))
    bash_syntax("vmlat-ci-gate", open(os.path.join(templates, "vmlat-ci-gate")).read())
    readme = open(os.path.join(templates, "README.md")).read()
    for name in ("gitlab-ci.yml", "github-workflow.yml", "Jenkinsfile", "vmlat-ci-gate"):
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
