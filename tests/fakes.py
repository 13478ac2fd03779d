"""A fake Jira: a real HTTP server on loopback that behaves as ../shared/contracts.md documents.

It keeps issues in memory, answers the requests our client sends with Jira's shapes and
status codes, rejects what Jira rejects (unknown project, spaces in labels, plain-text
bodies on v3, the removed /search, missing remote-link title, bad credentials) and fails
on demand: 429 with Retry-After, 500, slow answers, and a create whose answer is lost.

Jira identity (issue 16), each switchable: `move` changes an issue's key (the old key and
the id keep answering, with the new key); `lag_search` keeps new issues out of search
for a while, as Cloud's eventually consistent index does (GET by key still works); entity
`properties` on create are validated and kept; POST /issueLink links issues ("Duplicate"),
shown in both issues' `issuelinks` field.

Like Jira Cloud, every answer carries X-RateLimit-Limit / -Remaining / -NearLimit, and the
three Cloud limits can be switched on (tests/fake_jira_limits.py).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from werkzeug.serving import make_server

from tests.fake_jira_limits import CloudRateLimits

# Atlassian's OpenAPI document (Cloud v3) cut down to the schemas below and what they
# reference (tests/fixtures/jira/extract_subset.py), so a clean checkout validates too.
OPENAPI_DOCUMENT = Path(__file__).resolve().parent / "fixtures" / "jira" / "openapi-subset.json"
# Request bodies checked against it, by path pattern.
VALIDATED_REQUESTS = {
    ("POST", re.compile(r"^/rest/api/3/issue$")): "IssueUpdateDetails",
    ("POST", re.compile(r"^/rest/api/3/issue/[^/]+/comment$")): "Comment",
    ("POST", re.compile(r"^/rest/api/3/issue/[^/]+/remotelink$")): "RemoteIssueLinkRequest",
    ("POST", re.compile(r"^/rest/api/3/issue/[^/]+/transitions$")): "IssueUpdateDetails",
    ("POST", re.compile(r"^/rest/api/3/issueLink$")): "LinkIssueRequestJsonBean",
}


class OpenApiRequestValidator:
    """Validates request bodies against component schemas of the Jira OpenAPI document."""

    def __init__(self, document_path: Path) -> None:
        document = json.loads(document_path.read_text())
        resource = Resource.from_contents(document, default_specification=DRAFT7)
        self.registry = Registry().with_resource("urn:jira-openapi", resource)

    def errors(self, method: str, path: str, body: Any) -> list[str]:
        for (wanted_method, pattern), schema_name in VALIDATED_REQUESTS.items():
            if method == wanted_method and pattern.match(path):
                validator = Draft7Validator(
                    {"$ref": f"urn:jira-openapi#/components/schemas/{schema_name}"}, registry=self.registry
                )
                return [
                    f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message}" for e in validator.iter_errors(body)
                ]
        return []


@functools.cache
def openapi_validator() -> OpenApiRequestValidator:
    return OpenApiRequestValidator(OPENAPI_DOCUMENT)


# LKK and OPS are software projects; SD a Jira Service Management service project (its requests are tickets).
PROJECTS = {"LKK": "10000", "OPS": "10001", "SD": "10002"}
# Link types of a default Jira site: name -> (inward, outward) descriptions.
LINK_TYPES = {
    "Duplicate": ("is duplicated by", "duplicates"),
    "Blocks": ("is blocked by", "blocks"),
    "Relates": ("relates to", "relates to"),
}
PROPERTY_VALUE_LIMIT = 32768
ISSUE_TYPES = {"Bug", "Task", "Incident"}
PRIORITIES = {"Highest", "High", "Medium", "Low", "Lowest"}
STATUS_OPEN = {"name": "To Do", "statusCategory": {"key": "new", "name": "To Do"}}
STATUS_DONE = {"name": "Done", "statusCategory": {"key": "done", "name": "Done"}}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    lose_answer: bool = False
    times: int = 1


@dataclass
class Call:
    method: str
    path: str
    body: Any
    at: float
    status: int = 0


@dataclass
class FakeJiraState:
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    remote_links: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    schema_violations: list[str] = field(default_factory=list)
    # Transition id -> fields its screen requires (a workflow with a required resolution or custom field).
    required_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Transition id -> fields not on its screen: refused when sent.
    refused_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    next_id: int = 10000
    # Jira identity: seconds new issues stay out of search, old key -> new key, issue links, creation times by id.
    search_lag: float = 0.0
    moved: dict[str, str] = field(default_factory=dict)
    links: list[tuple[str, str, str]] = field(default_factory=list)
    created_at: dict[str, float] = field(default_factory=dict)


def _error(status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None) -> Response:
    response = jsonify({"errorMessages": messages or [], "errors": errors or {}})
    response.status_code = status
    return response


def _is_adf(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
    )


class FakeJira(CloudRateLimits):
    """Start with `with FakeJira() as jira:`; `jira.url` is its base URL."""

    def __init__(
        self, email: str = "bot@example.com", api_token: str = "jira-token", personal_access_token: str = "jira-pat"
    ) -> None:
        import base64

        self.accepted_auth = {
            "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode(),
            f"Bearer {personal_access_token}",
        }
        self.state = FakeJiraState()
        self.lock = threading.Lock()
        CloudRateLimits.__init__(self)
        self.app = self._build_app()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeJira:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    # Test controls ----------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        lose_answer: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next `times` matching requests fail, stall or lose their answer."""
        with self.lock:
            self.state.faults.append(Fault(method, re.compile(path), status, retry_after, delay, lose_answer, times))

    def require_fields(self, transition_id: str, *names: str) -> None:
        """Give a transition a screen whose fields are required: refused (400, `errors`) without them."""
        with self.lock:
            self.state.required_fields[transition_id] = names

    def refuse_fields(self, transition_id: str, *names: str) -> None:
        """Fields left off a transition's screen: sending them is a 400 naming them."""
        with self.lock:
            self.state.refused_fields[transition_id] = names

    def lag_search(self, seconds: float) -> None:
        """Keep issues out of search results until `seconds` after their creation (0: all visible)."""
        with self.lock:
            self.state.search_lag = seconds

    def move(self, key: str, project: str) -> str:
        """Move an issue to another project: a new key, the same id; the old key keeps answering."""
        with self.lock:
            current = self._current_key(key)
            if current is None:
                raise KeyError(key)
            used = [k for k in [*self.state.issues, *self.state.moved] if k.split("-")[0] == project]
            new_key = f"{project}-{len(used) + 1}"
            issue = self.state.issues.pop(current)
            issue["key"] = new_key
            issue["fields"]["project"] = {"key": project}
            self.state.issues[new_key] = issue
            for per_key in (self.state.comments, self.state.remote_links):
                if current in per_key:
                    per_key[new_key] = per_key.pop(current)  # type: ignore[attr-defined]
            self.state.moved = {old: (new_key if to == current else to) for old, to in self.state.moved.items()} | {
                current: new_key
            }
            return new_key

    def issue_links(self, key: str) -> list[dict[str, Any]]:
        """The `issuelinks` field of an issue, as Jira shows it."""
        with self.lock:
            return self._issue_links(self.state.issues[key]["id"])

    def _current_key(self, key_or_id: str) -> str | None:
        """The current key of an issue named by its key, an old key, or its id (caller holds the lock)."""
        if key_or_id in self.state.issues:
            return key_or_id
        if key_or_id in self.state.moved:
            return self.state.moved[key_or_id]
        return next((i["key"] for i in self.state.issues.values() if i["id"] == key_or_id), None)

    def _issue_links(self, issue_id: str) -> list[dict[str, Any]]:
        """Caller holds the lock."""
        by_id = {i["id"]: i for i in self.state.issues.values()}
        shown = []
        for name, inward, outward in self.state.links:
            kind = {"name": name, "inward": LINK_TYPES[name][0], "outward": LINK_TYPES[name][1]}
            for side, mine, other in (("outwardIssue", inward, outward), ("inwardIssue", outward, inward)):
                if mine == issue_id:
                    linked = by_id[other]
                    status = {"status": dict(linked["fields"]["status"])}
                    shown.append({"type": kind, side: {"id": other, "key": linked["key"], "fields": status}})
        return shown

    def _searchable(self, issue: dict[str, Any]) -> bool:
        """Whether the lagging index shows the issue yet (caller holds the lock)."""
        return self.state.created_at.get(issue["id"], 0.0) + self.state.search_lag <= time.time()

    def calls(self, method: str, path: str) -> list[Call]:
        pattern = re.compile(path)
        with self.lock:
            return [c for c in self.state.calls if c.method == method and pattern.search(c.path)]

    def add_issue(
        self,
        key: str,
        summary: str = "existing",
        labels: list[str] | None = None,
        fix_versions: list[str] | None = None,
    ) -> None:
        project = key.split("-")[0]
        with self.lock:
            self.state.issues[key] = {
                "id": str(self.state.next_id),
                "key": key,
                "fields": {
                    "summary": summary,
                    "project": {"key": project},
                    "labels": labels or [],
                    "status": dict(STATUS_OPEN),
                    "resolution": None,
                    "fixVersions": [{"name": v} for v in fix_versions or []],
                },
            }
            self.state.next_id += 1

    def resolve(
        self, key: str, resolution: str = "Fixed", comment: str | None = None, *, duplicates: str | None = None
    ) -> None:
        """Move an issue to Done with a resolution (Fixed, Won't Do, Duplicate...); `duplicates` links
        it, as a person resolving a duplicate does, to the issue it duplicates."""
        with self.lock:
            fields = self.state.issues[key]["fields"]
            fields["status"] = dict(STATUS_DONE)
            fields["resolution"] = {"name": resolution}
            if duplicates is not None:
                link = ("Duplicate", self.state.issues[key]["id"], self.state.issues[duplicates]["id"])
                if link not in self.state.links:
                    self.state.links.append(link)
            if comment is not None:
                self.state.comments.setdefault(key, []).append(
                    {"id": str(len(self.state.comments) + 1), "body": comment, "created": time.time()}
                )

    def reopen(self, key: str) -> None:
        """Someone works on a done issue again: back to To Do, its resolution cleared."""
        with self.lock:
            fields = self.state.issues[key]["fields"]
            fields["status"] = dict(STATUS_OPEN)
            fields["resolution"] = None

    def issue(self, key: str) -> dict[str, Any]:
        with self.lock:
            return self.state.issues[key]

    def issues(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.issues.values())

    def comments(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.comments.get(key, []))

    def remote_links(self, key: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.state.remote_links.get(key, {}))

    # The server ---------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.state.faults:
                if fault.method == method and fault.path.search(path) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _build_app(self) -> Flask:
        app = Flask("fake_jira")
        fake = self

        @app.url_value_preprocessor
        def _follow_moves(endpoint, values):  # type: ignore[no-untyped-def]
            # Jira answers an old key (and an id) with the issue as it is now.
            if values and isinstance(values.get("key"), str):
                with fake.lock:
                    values["key"] = fake._current_key(values["key"]) or values["key"]

        @app.before_request
        def _gate():  # type: ignore[no-untyped-def]
            if request.headers.get("Authorization") not in fake.accepted_auth:
                return _error(401, ["You are not authenticated. Authentication required to perform this operation."])
            limited = fake.rate_limited(request.method, request.path)
            if limited is not None:
                return limited
            if request.method == "POST":
                problems = openapi_validator().errors(request.method, request.path, request.get_json(silent=True))
                if problems:
                    with fake.lock:
                        fake.state.schema_violations.extend(problems)
                    return _error(400, ["request does not match the Jira OpenAPI schema"] + problems)
            fault = fake._take_fault(request.method, request.path)
            request.environ["fake_jira.fault"] = fault
            if fault is not None and not fault.lose_answer:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is not None:
                    response = _error(fault.status, [f"injected {fault.status}"])
                    if fault.retry_after is not None:
                        response.headers["Retry-After"] = str(fault.retry_after)
                    return response
            return None

        @app.after_request
        def _record(response):  # type: ignore[no-untyped-def]
            fake.add_budget_headers(response)
            body = request.get_json(silent=True)
            with fake.lock:
                fake.state.calls.append(
                    Call(request.method, request.full_path.rstrip("?"), body, time.time(), response.status_code)
                )
            fault = request.environ.get("fake_jira.fault")
            if fault is not None and fault.lose_answer:
                # The work is done, but the answer never arrives in time.
                time.sleep(fault.delay or 5)
            return response

        def version() -> int:
            return 3 if request.path.startswith("/rest/api/3/") else 2

        def text_ok(value: Any) -> bool:
            return _is_adf(value) if version() == 3 else isinstance(value, str)

        @app.post("/rest/api/<int:v>/issue")
        def create_issue(v: int):  # type: ignore[no-untyped-def]
            properties = (request.get_json(silent=True) or {}).get("properties", [])
            fields = (request.get_json(silent=True) or {}).get("fields")
            if not isinstance(fields, dict):
                return _error(400, ["Field 'fields' is required"])
            errors: dict[str, str] = {}
            project = (fields.get("project") or {}).get("key")
            if project not in PROJECTS:
                errors["project"] = "valid project is required"
            if (fields.get("issuetype") or {}).get("name") not in ISSUE_TYPES:
                errors["issuetype"] = "valid issue type is required"
            summary = fields.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif len(summary) > 255:
                errors["summary"] = "Summary must be less than 255 characters."
            if "description" in fields and not text_ok(fields["description"]):
                errors["description"] = (
                    "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                    if version() == 3
                    else "Operation value must be a string"
                )
            for label in fields.get("labels") or []:
                if not isinstance(label, str) or re.search(r"\s", label):
                    errors["labels"] = "The label can't contain spaces."
            if "priority" in fields and (fields["priority"] or {}).get("name") not in PRIORITIES:
                errors["priority"] = "The priority selected is invalid."
            if errors:
                return _error(400, errors=errors)
            refused_properties = property_errors(properties)
            if refused_properties:
                return _error(400, refused_properties)
            with fake.lock:
                number = sum(1 for k in [*fake.state.issues, *fake.state.moved] if k.startswith(project + "-")) + 1
                key = f"{project}-{number}"
                issue_id = str(fake.state.next_id)
                fake.state.created_at[issue_id] = time.time()
                fake.state.next_id += 1
                fake.state.issues[key] = {
                    "id": issue_id,
                    "key": key,
                    "fields": {
                        **fields,
                        "status": dict(STATUS_OPEN),
                        "resolution": None,
                        "labels": list(fields.get("labels") or []),
                    },
                    "properties": {p["key"]: p["value"] for p in properties},
                }
            response = jsonify({"id": issue_id, "key": key, "self": f"{fake.url}/rest/api/{v}/issue/{issue_id}"})
            response.status_code = 201
            return response

        def issue_view(issue: dict[str, Any], wanted: str | None) -> dict[str, Any]:
            if not wanted:
                return {"id": issue["id"]}
            names = set(wanted.split(","))
            with fake.lock:
                every = {**issue["fields"], "issuelinks": fake._issue_links(issue["id"])}
            fields = (
                every if "*all" in names or "*navigable" in names else {k: v for k, v in every.items() if k in names}
            )
            return {"id": issue["id"], "key": issue["key"], "fields": fields}

        @app.get("/rest/api/<int:v>/issue/<key>")
        def get_issue(v: int, key: str):  # type: ignore[no-untyped-def]
            with fake.lock:
                issue = fake.state.issues.get(key)
            if issue is None:
                return _error(404, ["Issue does not exist or you do not have permission to see it."])
            return jsonify(issue_view(issue, request.args.get("fields") or "*all"))

        def run_jql(jql: str) -> list[dict[str, Any]] | Response:
            if not jql.strip():
                return _error(400, ["Unbounded JQL queries are not allowed here. Please add a search restriction."])
            clauses = re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE)
            with fake.lock:
                found = [i for i in fake.state.issues.values() if fake._searchable(i)]
            for clause in clauses:
                if m := re.fullmatch(r'labels\s*=\s*"((?:[^"\\]|\\.)*)"', clause):
                    value = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
                    found = [i for i in found if value in i["fields"].get("labels", [])]
                elif m := re.fullmatch(r"project\s*=\s*\"?([A-Z][A-Z0-9]*)\"?", clause):
                    found = [i for i in found if i["key"].startswith(m.group(1) + "-")]
                elif m := re.fullmatch(r'fixVersion\s*=\s*"((?:[^"\\]|\\.)*)"', clause):
                    found = [i for i in found if m.group(1) in [v["name"] for v in i["fields"].get("fixVersions", [])]]
                elif m := re.fullmatch(r"fixVersion\s*=\s*(\d+)", clause):
                    found = [
                        i for i in found if m.group(1) in [v.get("id") for v in i["fields"].get("fixVersions", [])]
                    ]
                elif m := re.fullmatch(r"key\s+in\s*\(([^)]*)\)", clause, flags=re.IGNORECASE):
                    keys = {k.strip().strip('"') for k in m.group(1).split(",")}
                    found = [i for i in found if i["key"] in keys]
                else:
                    return _error(400, [f"Error in the JQL Query: unsupported clause {clause!r}"])
            return sorted(found, key=lambda i: int(i["id"]))

        @app.get("/rest/api/<int:v>/search/jql")
        def search_jql(v: int):  # type: ignore[no-untyped-def]
            found = run_jql(request.args.get("jql", ""))
            if isinstance(found, Response):
                return found
            limit = min(int(request.args.get("maxResults", 50)), 100)
            start = int(request.args.get("nextPageToken", "0") or 0)
            page = found[start : start + limit]
            body: dict[str, Any] = {
                "issues": [issue_view(i, request.args.get("fields")) for i in page],
                "isLast": start + limit >= len(found),
            }
            if not body["isLast"]:
                body["nextPageToken"] = str(start + limit)
            return jsonify(body)

        @app.post("/rest/api/<int:v>/issueLink")
        def link_issues(v: int):  # type: ignore[no-untyped-def]
            body = request.get_json(silent=True) or {}
            name = (body.get("type") or {}).get("name")
            if name not in LINK_TYPES:
                return _error(404, [f"No issue link type with name '{name}' found."])
            with fake.lock:
                ends = [
                    fake._current_key(str((body.get(end) or {}).get("key") or (body.get(end) or {}).get("id")))
                    for end in ("inwardIssue", "outwardIssue")
                ]
                if None in ends:
                    return _error(404, ["Issue does not exist or you do not have permission to see it."])
                inward, outward = (fake.state.issues[str(k)]["id"] for k in ends)
                # Jira answers a link that exists already as created, and does not double it.
                if (name, inward, outward) not in fake.state.links:
                    fake.state.links.append((name, inward, outward))
            return Response(status=201)

        @app.get("/rest/api/<int:v>/issue/<key>/transitions")
        def list_transitions(v: int, key: str):  # type: ignore[no-untyped-def]
            with fake.lock:
                issue = fake.state.issues.get(key)
            if issue is None:
                return _error(404, ["Issue does not exist or you do not have permission to see it."])
            done = issue["fields"]["status"]["statusCategory"]["key"] == "done"
            transitions = (
                [{"id": "41", "name": "Reopen", "to": STATUS_OPEN, "isAvailable": True}]
                if done
                else [
                    {
                        "id": "21",
                        "name": "In Progress",
                        "isAvailable": True,
                        "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
                    },
                    {"id": "31", "name": "Close Issue", "to": STATUS_DONE, "isAvailable": True},
                ]
            )
            return jsonify({"transitions": transitions})

        @app.post("/rest/api/<int:v>/issue/<key>/transitions")
        def do_transition(v: int, key: str):  # type: ignore[no-untyped-def]
            body = request.get_json(silent=True) or {}
            transition_id = (body.get("transition") or {}).get("id")
            given = body.get("fields") or {}
            with fake.lock:
                issue = fake.state.issues.get(key)
                if issue is None:
                    return _error(404, ["Issue does not exist or you do not have permission to see it."])
                done = issue["fields"]["status"]["statusCategory"]["key"] == "done"
                targets = (
                    {"41": STATUS_OPEN}
                    if done
                    else {"21": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}, "31": STATUS_DONE}
                )
                if transition_id not in targets:
                    return _error(400, [f"Transition id '{transition_id}' is not valid for this issue."])
                missing = [n for n in fake.state.required_fields.get(transition_id, ()) if n not in given]
                off_screen = [n for n in fake.state.refused_fields.get(transition_id, ()) if n in given]
                if missing or off_screen:
                    errors = {n: f"{n} is required." for n in missing}
                    errors.update({n: f"{n} is not on the screen." for n in off_screen})
                    return _error(400, errors=errors)
                issue["fields"]["status"] = dict(targets[transition_id])
                issue["fields"]["resolution"] = (
                    (given.get("resolution") or {"name": "Done"}) if transition_id == "31" else None
                )
            return Response(status=204)

        @app.get("/rest/api/<int:v>/search")
        def search_legacy(v: int):  # type: ignore[no-untyped-def]
            if v == 3:
                return _error(
                    410, ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."]
                )
            found = run_jql(request.args.get("jql", ""))
            if isinstance(found, Response):
                return found
            limit = int(request.args.get("maxResults", 50))
            return jsonify(
                {
                    "startAt": 0,
                    "maxResults": limit,
                    "total": len(found),
                    "issues": [issue_view(i, request.args.get("fields") or "*navigable") for i in found[:limit]],
                }
            )

        @app.post("/rest/api/<int:v>/issue/<key>/comment")
        def add_comment(v: int, key: str):  # type: ignore[no-untyped-def]
            body = (request.get_json(silent=True) or {}).get("body")
            with fake.lock:
                if key not in fake.state.issues:
                    return _error(404, ["Issue does not exist or you do not have permission to see it."])
            if not text_ok(body):
                return _error(
                    400,
                    errors={
                        "comment": "Comment body must be an Atlassian Document"
                        if v == 3
                        else "Comment body can not be empty!"
                    },
                )
            with fake.lock:
                comments = fake.state.comments.setdefault(key, [])
                comment = {"id": str(10000 + len(comments)), "body": body, "created": time.time()}
                comments.append(comment)
            response = jsonify(comment)
            response.status_code = 201
            return response

        @app.get("/rest/api/<int:v>/issue/<key>/comment")
        def list_comments(v: int, key: str):  # type: ignore[no-untyped-def]
            with fake.lock:
                if key not in fake.state.issues:
                    return _error(404, ["Issue does not exist or you do not have permission to see it."])
                comments = list(fake.state.comments.get(key, []))
            if request.args.get("orderBy") == "-created":
                comments.reverse()
            limit = int(request.args.get("maxResults", 50))
            return jsonify({"comments": comments[:limit], "total": len(comments), "startAt": 0, "maxResults": limit})

        @app.post("/rest/api/<int:v>/issue/<key>/remotelink")
        def remote_link(v: int, key: str):  # type: ignore[no-untyped-def]
            body = request.get_json(silent=True) or {}
            with fake.lock:
                if key not in fake.state.issues:
                    return _error(404, ["Issue does not exist or you do not have permission to see it."])
            if not isinstance(body.get("object"), dict) or not body["object"].get("title"):
                return _error(400, errors={"title": "'title' is required."})
            with fake.lock:
                links = fake.state.remote_links.setdefault(key, {})
                global_id = body.get("globalId") or f"anonymous-{len(links)}"
                status = 200 if global_id in links else 201
                links[global_id] = body
                link_id = 10000 + list(links).index(global_id)
            response = jsonify({"id": link_id, "self": f"{fake.url}/rest/api/{v}/issue/{key}/remotelink/{link_id}"})
            response.status_code = status
            return response

        return app


def property_errors(properties: Any) -> list[str]:
    """What Jira refuses in a create request's `properties`: the shape and size of each `{key, value}`."""
    if not isinstance(properties, list):
        return ["properties: must be a list of {key, value}"]
    errors = []
    for n, item in enumerate(properties):
        if not isinstance(item, dict) or set(item) - {"key", "value"}:
            errors.append(f"properties[{n}]: must be an object with key and value only")
        elif not isinstance(item.get("key"), str) or not 0 < len(item["key"]) <= 255:
            errors.append(f"properties[{n}].key: The property key must be between 1 and 255 characters long.")
        elif "value" not in item or item["value"] is None:
            errors.append(f"properties[{n}].value: The property value is required.")
        elif len(json.dumps(item["value"])) > PROPERTY_VALUE_LIMIT:
            errors.append(f"properties[{n}].value: The property value exceeds {PROPERTY_VALUE_LIMIT} characters.")
    return errors


def iter_texts(value: Any) -> Iterator[str]:
    """Every text node of an ADF document (or the string itself)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if value.get("type") == "text":
            yield value.get("text", "")
        for child in value.get("content", []):
            yield from iter_texts(child)


class FakeZabbix:
    """A Zabbix 6.0 JSON-RPC API on loopback: apiinfo.version and event.acknowledge.

    Like 6.0, it reads the token from the `auth` member, refuses a close when a trigger
    does not allow manual closing (-32500), and fails a whole batch for one such event.
    """

    VERSION = "6.0.14"

    def __init__(self, api_token: str = "zabbix-token", manual_close_forbidden: set[str] | None = None) -> None:
        self.api_token = api_token
        self.manual_close_forbidden = manual_close_forbidden or set()
        self.acknowledgements: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        app = Flask("fake_zabbix")
        app.add_url_rule("/api_jsonrpc.php", view_func=self._rpc, methods=["POST"])
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeZabbix:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    def closed(self) -> set[str]:
        with self.lock:
            return {e for ack in self.acknowledgements if ack["action"] & 1 for e in ack["eventids"]}

    def _rpc(self):  # type: ignore[no-untyped-def]
        call = request.get_json(force=True, silent=True) or {}  # pyzabbix sends application/json-rpc
        method, params, rpc_id = call.get("method"), call.get("params") or {}, call.get("id")

        def error(code: int, message: str, data: str):  # type: ignore[no-untyped-def]
            return jsonify({"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": data}, "id": rpc_id})

        if method == "apiinfo.version":
            if "auth" in call:
                return error(
                    -32602,
                    "Invalid params.",
                    'The "apiinfo.version" method must be called without the "auth" parameter.',
                )
            return jsonify({"jsonrpc": "2.0", "result": self.VERSION, "id": rpc_id})
        if call.get("auth") != self.api_token:
            return error(-32602, "Invalid params.", "Not authorised.")
        if method != "event.acknowledge":
            return error(-32601, "Method not found.", f'Incorrect API "{method}".')
        event_ids = [str(e) for e in params.get("eventids", [])]
        action = int(params.get("action", 0))
        if action & 1 and self.manual_close_forbidden & set(event_ids):
            return error(-32500, "Application error.", "Cannot close problem: trigger does not allow manual closing.")
        with self.lock:
            self.acknowledgements.append({"eventids": event_ids, "action": action, "message": params.get("message")})
        return jsonify({"jsonrpc": "2.0", "result": {"eventids": event_ids}, "id": rpc_id})
