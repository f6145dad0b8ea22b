"""Models of the NATS types: ``nats.RealtimeTrigger`` and ``nats.Publish``.

Property names are Kestra's (``io.kestra.plugin.nats``); Kestrel extras have defaults.
Only static checks live here; the runtimes (`_listener`, `_jetstream`, `_publish`) are
imported when first used.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from flows import (
    Duration,
    KestrelModel,
    Listener,
    ListenerContext,
    Problems,
    RealtimeTrigger,
    RunContext,
    RunnableTask,
    refuse,
    register_type,
    templated,
)

_K = "io.kestra.plugin.nats"
_URL = re.compile(r"^(?:(?:nats|tls|ws|wss)://)?(?:[^@/\s]+@)?[\w.\-]+(?::\d{1,5})?/?$")
_NAME = re.compile(r"^[^\s.*>/\\]+$")  # JetStream stream and consumer names
DEFAULT_URL = "nats://localhost:4222"
"""The server used when ``url`` is not given: NATS's own default."""


def subject_problem(subject: str, *, wildcards: bool) -> str | None:
    """Why `subject` is not a valid NATS subject (or filter when `wildcards`), or None.

    Tokens are separated by ``.`` and never empty; ``*`` matches one whole token and
    ``>`` the remaining tokens, so it can only be the last one.
    """
    if templated(subject):
        return None
    if not subject or any(c.isspace() for c in subject):
        return f"'{subject}' is not a NATS subject: it must be non-empty, without whitespace"
    tokens = subject.split(".")
    if any(t == "" for t in tokens):
        return f"'{subject}' is not a NATS subject: a '.' separated token is empty"
    for index, part in enumerate(tokens):
        if ("*" in part or ">" in part) and not wildcards:
            return f"'{subject}' has a wildcard ('*' or '>'); a published subject cannot"
        if ("*" in part and part != "*") or (">" in part and part != ">"):
            return f"'{subject}': a wildcard ('*', '>') must be a whole token, got '{part}'"
        if part == ">" and index != len(tokens) - 1:
            return f"'{subject}': '>' can only be the last token"
    return None


def _url_problem(url: str) -> str | None:
    if templated(url):
        return None
    bad = [u for u in url.split(",") if not _URL.match(u.strip())]
    if bad:
        return (
            f"'{bad[0].strip()}' is not a NATS server URL: expected nats://host:port "
            "(or tls://, ws://, wss://; several separated by commas)"
        )
    return None


def _auth_problems(
    username: str | None, password: str | None, token: str | None, creds: str | None
) -> Problems:
    out: Problems = []
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        out.append(
            (missing, f"'username' and 'password' go together; '{missing}' is missing", None)
        )
    if token is not None and username is not None:
        out.append(("token", "use either 'token' or 'username'/'password', not both", token))
    if creds is not None and (token is not None or username is not None):
        out.append(
            (
                "creds",
                "'creds' (a credentials file) cannot be combined with 'token' or "
                "'username'/'password'",
                creds,
            )
        )
    return out


class NatsSerde(StrEnum):
    """How a NATS message body is read: text, parsed JSON, or base64 of the raw bytes."""

    STRING = "STRING"
    JSON = "JSON"
    BYTES = "BYTES"


class DeliverPolicy(StrEnum):
    """Where a new JetStream consumer starts; Kestra's spelling of JetStream's policies."""

    ALL = "All"
    LAST = "Last"
    NEW = "New"
    BY_START_SEQUENCE = "ByStartSequence"
    BY_START_TIME = "ByStartTime"
    LAST_PER_SUBJECT = "LastPerSubject"


_POLICIES = {p.value.lower(): p.value for p in DeliverPolicy} | {
    p.name.lower(): p.value for p in DeliverPolicy
}


def _policy(value: Any) -> Any:
    """Accept ``all``, ``by_start_time``... as well as Kestra's ``All``, ``ByStartTime``."""
    return _POLICIES.get(value.lower(), value) if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


_JETSTREAM_ONLY = ("durableId", "deliverPolicy", "since", "startSequence", "ackWait")


@register_type(
    "nats.RealtimeTrigger", aliases=(f"{_K}.RealtimeTrigger", f"{_K}.core.RealtimeTrigger")
)
class NatsRealtimeTrigger(RealtimeTrigger):
    """Start one execution per NATS message on ``subject`` (wildcards allowed).

    Two modes:

    * **JetStream** (durable, at least once) when ``stream`` or ``durableId`` is set, or
      any JetStream-only property (``deliverPolicy``, ``since``, ``startSequence``,
      ``ackWait``). Without ``stream`` the stream is the one that captures ``subject``
      (as in Kestra, whose trigger is JetStream only). A durable pull consumer is
      created if missing (explicit acks, ``max_ack_pending = maxInFlight``) and reused
      otherwise; without ``durableId`` it is named after the flow and trigger, so it
      survives restarts. A message is acked only after its execution is durable, and
      reported in progress while held longer than half of ``ackWait``. The dedupe key
      is ``nats:{stream}:{sequence}``. Pulls never ask for more than ``maxInFlight``
      minus the unacked deliveries, ``batchSize`` at a time.
    * **Core NATS** (at most once, lowest latency) otherwise: a plain subscription,
      optionally in ``queueGroup`` so several listeners share the messages. Nothing is
      acknowledged and there is no dedupe key: a message published while the listener
      is down is never seen. Beyond ``maxInFlight`` unacked deliveries the listener
      stops reading; the client buffers up to 65,536 messages (64 MiB) more, then
      NATS drops messages for the slow consumer (logged): that is core NATS.

    A message that keeps failing is dead-lettered after ``deadLetterAfter`` attempts; a
    body the ``deserializer`` cannot read (bad UTF-8, bad JSON) is dead-lettered at
    once. ``deserializer`` defaults to STRING (Kestra's behaviour): JSON gives objects
    (an empty body gives null), BYTES the base64 text of the body.

    Trigger variables: ``trigger.subject``, ``data``, ``headers`` (name → text; a header
    sent several times gives its values joined by ``", "``), ``timestamp`` (ISO-8601:
    the JetStream store time, or the receive time with core NATS), and ``sequence`` (the
    stream sequence) with JetStream. A ``Kestrel-Sent-At`` header (ISO-8601) is taken
    as the publish time for latency figures.

    Attributes:
        url: Server URL(s), ``nats://host:port`` (default ``nats://localhost:4222``); a
            token may be given as ``nats://tok@host``.
        username: User name, with `password`.
        password: Password, with `username`.
        token: Authentication token.
        creds: A credentials (JWT + NKey) file: its content or its path.
        subject: Subject or wildcard filter to listen to.
        stream: JetStream stream to consume from.
        durable_id: Durable consumer name.
        deliver_policy: Where a new consumer starts (JetStream).
        since: With ``ByStartTime``: the start time (naive = UTC).
        start_sequence: With ``ByStartSequence``: the first stream sequence.
        ack_wait: How long the server waits for an ack before redelivering.
        queue_group: Core NATS queue group.
        deserializer: How message bodies are read.
        batch_size: Messages fetched per pull request (JetStream).
        max_in_flight: Messages read but not yet durable, at most.
        dead_letter_after: Deliveries before a message is dead-lettered.
    """

    url: Annotated[str, Field(min_length=1)] = DEFAULT_URL
    username: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    subject: Annotated[str, Field(min_length=1)]
    stream: str | None = None
    durable_id: str | None = None
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    since: datetime | None = None
    start_sequence: Annotated[int, Field(ge=1)] | None = None
    ack_wait: Duration | None = None
    queue_group: str | None = None
    deserializer: NatsSerde = NatsSerde.STRING
    batch_size: Annotated[int, Field(ge=1)] = 10

    _policy_spelling = field_validator("deliver_policy", mode="before")(_policy)
    _serde = field_validator("deserializer", mode="before")(_upper)

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def jetstream(self) -> bool:
        """True when the trigger consumes through JetStream (durable), see the modes."""
        fields = {"stream", "durable_id", "deliver_policy", "since", "start_sequence", "ack_wait"}
        return bool(fields & self.model_fields_set)

    @model_validator(mode="after")
    def _consistent(self) -> NatsRealtimeTrigger:
        problems: Problems = []
        if problem := _url_problem(self.url):
            problems.append(("url", problem, self.url))
        if problem := subject_problem(self.subject, wildcards=True):
            problems.append(("subject", problem, self.subject))
        problems.extend(_auth_problems(self.username, self.password, self.token, self.creds))
        for key, value in (("stream", self.stream), ("durableId", self.durable_id)):
            if value is not None and not templated(value) and not _NAME.match(value):
                problems.append(
                    (
                        key,
                        f"{key} '{value}' must not contain whitespace, '.', '*', '>', '/' or '\\'",
                        value,
                    )
                )
        if self.jetstream and self.queue_group is not None:
            problems.append(
                (
                    "queueGroup",
                    "'queueGroup' is for core NATS; with JetStream "
                    "(stream/durableId) listeners share a durable consumer instead",
                    self.queue_group,
                )
            )
        problems.extend(self._start_problems())
        if self.ack_wait is not None and self.ack_wait.total_seconds() <= 0:
            problems.append(("ackWait", "ackWait must be a positive duration", str(self.ack_wait)))
        refuse(self, problems)
        return self

    def _start_problems(self) -> Problems:
        policy = self.deliver_policy
        if self.since is not None and "deliver_policy" not in self.model_fields_set:
            self.deliver_policy = policy = DeliverPolicy.BY_START_TIME
        if self.start_sequence is not None and "deliver_policy" not in self.model_fields_set:
            self.deliver_policy = policy = DeliverPolicy.BY_START_SEQUENCE
        out: Problems = []
        if policy is DeliverPolicy.BY_START_TIME and self.since is None:
            out.append(("since", "deliverPolicy ByStartTime needs 'since'", None))
        if self.since is not None and policy is not DeliverPolicy.BY_START_TIME:
            out.append(
                (
                    "since",
                    f"'since' needs deliverPolicy ByStartTime, not {policy.value}",
                    self.since.isoformat(),
                )
            )
        if policy is DeliverPolicy.BY_START_SEQUENCE and self.start_sequence is None:
            out.append(
                ("startSequence", "deliverPolicy ByStartSequence needs 'startSequence'", None)
            )
        if self.start_sequence is not None and policy is not DeliverPolicy.BY_START_SEQUENCE:
            out.append(
                (
                    "startSequence",
                    f"'startSequence' needs deliverPolicy ByStartSequence, not {policy.value}",
                    self.start_sequence,
                )
            )
        return out

    def create_listener(self, ctx: ListenerContext) -> Listener:
        """A JetStream listener or a core NATS listener, as `jetstream` says."""
        if self.jetstream:
            from ._jetstream import JetStreamListener

            return JetStreamListener(self, ctx)
        from ._listener import CoreListener

        return CoreListener(self, ctx)


class NatsMessage(KestrelModel):
    """One message to publish: Kestra's ``from`` entry.

    Attributes:
        headers: NATS headers; a list value is sent as its items joined by ``", "``.
        data: The body; a mapping or list is sent as JSON, anything else as text.
    """

    headers: dict[str, str | list[str]] = Field(default_factory=dict)
    data: Any = None


def _from_kind(value: Any) -> str:
    # Tags hold a '[' so that error locations skip them (flows' convention for union tags).
    if isinstance(value, dict | NatsMessage):
        return "message[]"
    return "list[message]" if isinstance(value, list) else "str[rendered]"


def _from_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(
            "'from' must be a message {headers, data}, a list of messages or a string, "
            f"got {type(value).__name__}"
        )
    return value


NatsFrom = Annotated[
    Annotated[NatsMessage, Tag("message[]")]
    | Annotated[list[NatsMessage], Tag("list[message]")]
    | Annotated[str, BeforeValidator(_from_text), Tag("str[rendered]")],
    Discriminator(_from_kind),
]
"""Kestra's ``from``: a message, a list of messages, or a string rendered at run time
into JSON (one message or a list) or an internal-storage URI of messages."""


@register_type("nats.Publish", aliases=(f"{_K}.Produce", f"{_K}.core.Produce", f"{_K}.Publish"))
class NatsPublish(RunnableTask):
    """Publish one or more messages on ``subject``; outputs ``messagesCount``.

    Give the messages with Kestra's ``from`` or one message with ``payload`` (+
    ``headers``). With ``jetstream`` each publish waits for the stream's acknowledgement
    (outputs the sequences); ``msgId`` sets ``Nats-Msg-Id`` so JetStream drops a
    duplicate published within the stream's duplicate window (a retried task publishes
    once).

    Attributes:
        url: Server URL(s), ``nats://host:port`` (default ``nats://localhost:4222``).
        username: User name, with `password`.
        password: Password, with `username`.
        token: Authentication token.
        creds: A credentials (JWT + NKey) file: its content or its path.
        subject: The subject, without wildcards.
        from_: Kestra's ``from``.
        payload: Shortcut: the body of a single message (mapping/list sent as JSON).
        headers: Shortcut: the headers of a single message.
        jetstream: Wait for JetStream's acknowledgement of each message.
        msg_id: ``Nats-Msg-Id`` of the (single) message, for JetStream de-duplication.
    """

    url: Annotated[str, Field(min_length=1)] = DEFAULT_URL
    username: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    subject: Annotated[str, Field(min_length=1)]
    from_: NatsFrom | None = Field(default=None, alias="from")
    payload: Any = None
    headers: dict[str, str | list[str]] | None = None
    jetstream: bool = False
    msg_id: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NatsPublish:
        problems: Problems = []
        if problem := _url_problem(self.url):
            problems.append(("url", problem, self.url))
        if problem := subject_problem(self.subject, wildcards=False):
            problems.append(("subject", problem, self.subject))
        problems.extend(_auth_problems(self.username, self.password, self.token, self.creds))
        has_payload = "payload" in self.model_fields_set
        if self.from_ is not None and (has_payload or self.headers is not None):
            key = "payload" if has_payload else "headers"
            problems.append(
                (
                    key,
                    f"'{key}' cannot be combined with 'from'; put it in the "
                    "message(s) of 'from' (data, headers)",
                    None,
                )
            )
        elif self.from_ is None and not has_payload:
            problems.append(("from", "missing 'from' (a message or a list) or 'payload'", None))
        if self.msg_id is not None and isinstance(self.from_, list) and len(self.from_) > 1:
            problems.append(
                (
                    "msgId",
                    "'msgId' names one message; with several messages in "
                    "'from' JetStream would drop all but the first",
                    self.msg_id,
                )
            )
        refuse(self, problems)
        return self

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Publish the messages, on a connection shared by the process.

        Returns:
            ``{"messagesCount": n}``, plus ``sequences`` (the stream sequence of each
            message, in order) with ``jetstream``.

        Raises:
            TaskError: The connection or a publish failed (retriable), or the messages
                or the stream are wrong (not retriable).
        """
        from ._publish import publish

        return await publish(self, ctx)
