"""Identity rules, with PostHog's semantics as the reference: which person each event belongs to.

Pure and in memory: `Walk` takes the persons a batch refers to (as loaded from Postgres) and applies the
batch's events to them in order: first sight creates a person; `$identify` with `$anon_distinct_id`,
`$create_alias` and Amplitude's user id + device id on one event link two distinct ids, merging their
persons unless the source person is already identified (only `$merge_dangerously` merges those); `$set`
and friends update properties. What Postgres must then do is read off the finished walk (`Walk.plan`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from workers.person_properties import apply, updates_of

Key = tuple[int, str]  # (project_id, distinct_id)
PersonId = str  # a UUID in its canonical text form: hashes and serializes faster than PersonId
PERSONLESS_NAMESPACE = uuid.UUID("6f1b0d4e-8a57-4d0c-9b1e-3c2a7e5f9d10")
JUNK_IDS = frozenset(
    ("anonymous", "null", "undefined", "0", "[object object]", "none", "nan", "guest", "distinct_id",
     "distinctid", "id", "not_authenticated", "email", "true", "false", "[]", "{}", "-1")
)  # fmt: skip
MAX_ID_LENGTH = 200


def junk_reason(distinct_id: str) -> str | None:
    """Why an id can never name a person (PostHog's list of ids SDKs send by mistake), or None."""
    stripped = distinct_id.strip()
    if not stripped:
        return "empty distinct id"
    if len(distinct_id) > MAX_ID_LENGTH:
        return f"distinct id longer than {MAX_ID_LENGTH} characters"
    if stripped.lower() in JUNK_IDS:
        return f"distinct id {distinct_id!r} is a placeholder, not an id"
    return None


def personless_id(project_id: int, distinct_id: str) -> PersonId:
    """The person id of a personless event whose distinct id has no person: stable, nothing stored."""
    return str(uuid.uuid5(PERSONLESS_NAMESPACE, f"{project_id}:{distinct_id}"))


def new_person_id(project_id: int, distinct_id: str) -> PersonId:
    """A new person takes the id its distinct id's personless events already carry (PostHog does the same),
    so those events belong to it with nothing rewritten."""
    return personless_id(project_id, distinct_id)


def first_version(project_id: int, distinct_id: str, person_id: PersonId) -> int:
    """The version of a distinct id's first row: 0 when it names the id's own new person, whose id every
    earlier event of the id carries; 1 when it joins another person (its earlier personless events carry
    another id), so that queries resolve its events through `person_distinct_ids`, as they do for every
    id that moved (version > 0)."""
    return 0 if person_id == personless_id(project_id, distinct_id) else 1


@dataclass
class Person:
    id: PersonId
    project_id: int
    properties: dict[str, Any]
    is_identified: bool
    created_at: datetime
    version: int  # as stored in Postgres (0 for a person this batch creates)

    def copy(self) -> Person:
        # properties are replaced, never changed in place, so the copy may share them
        return Person(
            self.id, self.project_id, self.properties, self.is_identified, self.created_at, self.version
        )


@dataclass(frozen=True)
class Link:
    """An event that links its distinct id (the target) to another one (the source)."""

    kind: str  # identify, alias, merge_dangerously
    source: str | None  # None: `$identify` without an anonymous id only marks the person identified


def link_of(event: Mapping[str, Any]) -> Link | None:
    name, properties = event["event"], event["properties"]
    if name == "$identify":
        anon = properties.get("$anon_distinct_id")
        return Link("identify", anon if isinstance(anon, str) and anon else None)
    if name in ("$create_alias", "$merge_dangerously"):
        alias = properties.get("alias")
        kind = "alias" if name == "$create_alias" else "merge_dangerously"
        return Link(kind, alias if isinstance(alias, str) and alias else None)
    if event.get("protocol") == "amplitude":
        user_id, device_id = properties.get("$user_id"), properties.get("$device_id")
        if isinstance(user_id, str) and isinstance(device_id, str) and user_id and device_id:
            return Link("identify", device_id)
    return None


def is_personless(event: Mapping[str, Any]) -> bool:
    return event["properties"].get("$process_person_profile") is False


def event_time(event: Mapping[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return datetime.now(UTC)


@dataclass
class Outcome:
    """What happened to one event: its person and their properties as of the event (shared, read-only),
    and what was refused."""

    person_id: PersonId
    properties: dict[str, Any]
    refused: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)
    merged: str | None = None  # the link kind when this event merged two persons


@dataclass
class Plan:
    """Postgres writes that turn the loaded state into the walk's final state."""

    check_versions: dict[PersonId, int]  # stored persons updated or deleted: the version they must still have
    insert_persons: list[Person]
    insert_ids: dict[Key, PersonId]
    move_ids: dict[PersonId, PersonId]  # stored person merged away -> the person that now has its ids
    delete_persons: list[Person]
    update_persons: list[Person]

    @property
    def empty(self) -> bool:
        return not (self.insert_persons or self.insert_ids or self.move_ids or self.update_persons)


class Walk:
    """Applies a batch's events, in order, to the persons they refer to."""

    def __init__(
        self,
        ids: Mapping[Key, PersonId],
        persons: Mapping[PersonId, Person],
        max_properties_bytes: int,
        new_person_id: Any = new_person_id,
    ) -> None:
        self.ids: dict[Key, PersonId] = dict(ids)
        self.stored = dict(persons)  # as loaded; never mutated
        self.persons: dict[PersonId, Person] = {}  # working copies of the persons this batch touches
        self.new_ids: set[Key] = set()
        self.merged_into: dict[PersonId, PersonId] = {}
        self.changed: set[PersonId] = set()
        self.versions: dict[PersonId, int] = {}  # highest stored version a person absorbed
        self._max_bytes = max_properties_bytes
        self._new_person_id = new_person_id

    def person(self, person_id: PersonId) -> Person:
        if person_id not in self.persons:
            self.persons[person_id] = self.stored[person_id].copy()
        return self.persons[person_id]

    def apply(self, event: Mapping[str, Any]) -> Outcome:
        project_id, distinct_id = event["project_id"], event["distinct_id"]
        key = (project_id, distinct_id)
        if is_personless(event):
            person_id = self.ids.get(key)
            if person_id is None:
                return Outcome(personless_id(project_id, distinct_id), {})
            return Outcome(person_id, self.person(person_id).properties)
        refused: list[tuple[str, str]] = []
        merged = None
        link = link_of(event)
        if link is None:
            person = self._get_or_create(key, event)
        else:
            person, merged = self._link(key, link, event, refused)
        updates = updates_of(event)
        if updates:
            new = apply(person.properties, updates)
            if new is not None:
                size = len(orjson.dumps(new))
                if size > self._max_bytes:
                    refused.append(
                        (
                            "properties_too_large",
                            f"person properties would be {size} bytes (max {self._max_bytes})",
                        )
                    )
                else:
                    person.properties = new
                    self.changed.add(person.id)
        return Outcome(person.id, person.properties, refused, merged)

    def _get_or_create(self, key: Key, event: Mapping[str, Any]) -> Person:
        person_id = self.ids.get(key)
        if person_id is not None:
            return self.person(person_id)
        person = Person(self._new_person_id(*key), key[0], {}, False, event_time(event), 0)
        self.persons[person.id] = person
        self.changed.add(person.id)
        self.ids[key] = person.id
        self.new_ids.add(key)
        return person

    def _add_id(self, key: Key, person: Person) -> None:
        self.ids[key] = person.id
        self.new_ids.add(key)

    def _identified(self, person: Person) -> Person:
        if not person.is_identified:
            person.is_identified = True
            self.changed.add(person.id)
        return person

    def _link(
        self, key: Key, link: Link, event: Mapping[str, Any], refused: list[tuple[str, str]]
    ) -> tuple[Person, str | None]:
        if link.source is None or link.source == key[1]:
            return self._identified(self._get_or_create(key, event)), None
        if (reason := junk_reason(link.source)) is not None:
            refused.append(("junk_id", reason))
            return self._get_or_create(key, event), None
        source_key = (key[0], link.source)
        target_id, source_id = self.ids.get(key), self.ids.get(source_key)
        if target_id is None and source_id is None:
            person = self._get_or_create(key, event)
            self._add_id(source_key, person)
            return self._identified(person), None
        if target_id is None:
            assert source_id is not None
            person = self.person(source_id)
            self._add_id(key, person)
            return self._identified(person), None
        target = self.person(target_id)
        if source_id is None:
            self._add_id(source_key, target)
            return self._identified(target), None
        if source_id == target_id:
            return self._identified(target), None
        source = self.person(source_id)
        if source.is_identified and link.kind != "merge_dangerously":
            refused.append(
                ("already_identified", f"{link.kind}: the person of {link.source!r} is already identified")
            )
            return target, None
        self._merge(source, target)
        return target, link.kind

    def _merge(self, source: Person, target: Person) -> None:
        """PostHog's merge: properties {...source, ...target}, oldest created_at, every id moves."""
        target.properties = {**source.properties, **target.properties}
        target.created_at = min(target.created_at, source.created_at)
        target.is_identified = True
        self.versions[target.id] = max(
            self.versions.get(target.id, target.version), self.versions.get(source.id, source.version)
        )
        for key, person_id in self.ids.items():
            if person_id == source.id:
                self.ids[key] = target.id
        for dead, into in self.merged_into.items():
            if into == source.id:
                self.merged_into[dead] = target.id
        self.merged_into[source.id] = target.id
        self.changed.add(target.id)
        self.changed.discard(source.id)
        del self.persons[source.id]

    def final_version(self, person: Person) -> int:
        return max(self.versions.get(person.id, person.version), person.version) + 1

    def plan(self) -> Plan:
        alive_changed = [self.persons[p] for p in sorted(self.changed) if p in self.persons]
        stored_dead = [self.stored[p] for p in self.merged_into if p in self.stored]
        stored_updated = [p for p in alive_changed if p.id in self.stored]
        for person in alive_changed:
            person.version = self.final_version(person)
        check = {p.id: self.stored[p.id].version for p in stored_updated}
        check.update({p.id: p.version for p in stored_dead})
        return Plan(
            check_versions=check,
            insert_persons=[p for p in alive_changed if p.id not in self.stored],
            insert_ids={k: self.ids[k] for k in sorted(self.new_ids)},
            move_ids={p.id: self.merged_into[p.id] for p in stored_dead},
            delete_persons=stored_dead,
            update_persons=stored_updated,
        )
