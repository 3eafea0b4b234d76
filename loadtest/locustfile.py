"""Load test for a running supportbot (Locust): web chat visitors, agents, Telegram and WhatsApp senders.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --headless -u 50 -r 10 -t 2m

Who comes (weights in brackets; `--class-picker` or the class names on the command line pick some):

- `WebchatVisitor` (10): asks FAQ questions taken from the evaluation sets (`eval/*_test.csv`), each with a
  `client_message_id` and resent once with the same id (an unreliable network: the service must answer it
  once); every `LOADTEST_HANDOFF_EVERY`-th visitor (default 2) then asks for a person and waits.
- `AgentUser` (fixed count, `LOADTEST_AGENTS`): logs in, goes online, and works what it is given through
  the agent API: reads the conversation, replies, resolves.
- `TelegramSender` (3) and `WhatsAppSender` (3): post messages to the webhooks, signed with the
  configured secrets (`LOADTEST_TELEGRAM_SECRET`, `LOADTEST_WHATSAPP_APP_SECRET`); skipped when unset.

Environment (all optional): LOADTEST_AGENTS="login:password,login:password" (agents that exist; none:
no agent users), LOADTEST_EVAL="eval/heldout_test.csv,eval/demo_test.csv", LOADTEST_HANDOFF_EVERY=2,
LOADTEST_THINK="0.5,2" (seconds between a visitor's messages), LOADTEST_MESSAGES=3 (questions per
visitor before it leaves or hands off), LOADTEST_MAX_VISITORS=0 (conversations to start in all; 0: no
limit), LOADTEST_HOSTS="http://a:8081,http://b:8082" (several processes without a proxy: each user keeps
to one and, after a connection error or a 5xx, sends the same message again to the next; loadtest/cluster.py
sets it).

The request names in Locust's table say what was measured: "webchat: question" is the time from the
visitor's POST to the bot's reply in its answer, which is the reply latency a customer sees.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import itertools
import json
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count(1)
_agent_numbers = itertools.count(0)


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def load_questions() -> list[str]:
    """The in-scope questions of the evaluation sets (their out-of-scope rows would mostly hand off)."""
    questions: list[str] = []
    for name in _env_list("LOADTEST_EVAL", "eval/heldout_test.csv,eval/demo_test.csv"):
        path = Path(name) if Path(name).is_absolute() else ROOT / name
        with path.open(encoding="utf-8", newline="") as file:
            questions += [row["text"] for row in csv.DictReader(file) if row["intent"] != "oos"]
    return questions


QUESTIONS = load_questions()
THINK = [float(x) for x in _env_list("LOADTEST_THINK", "0.5,2")]
MESSAGES = int(os.environ.get("LOADTEST_MESSAGES", "3"))
HANDOFF_EVERY = int(os.environ.get("LOADTEST_HANDOFF_EVERY", "2"))
AGENTS = [tuple(pair.split(":", 1)) for pair in _env_list("LOADTEST_AGENTS", "")]
TELEGRAM_SECRET = os.environ.get("LOADTEST_TELEGRAM_SECRET", "")
WHATSAPP_APP_SECRET = os.environ.get("LOADTEST_WHATSAPP_APP_SECRET", "")
WHATSAPP_PHONE_NUMBER_ID = os.environ.get("LOADTEST_WHATSAPP_PHONE_NUMBER_ID", "1122334455667")
HUMAN = "I want to talk to a human"
# several processes without a proxy in front: each user picks one, and fails over to the next on an error
HOSTS = _env_list("LOADTEST_HOSTS", "")
MAX_VISITORS = int(os.environ.get("LOADTEST_MAX_VISITORS", "0"))  # 0: new visitors for as long as it runs
ATTEMPTS = 40  # a message is sent again (same client_message_id) this often before it counts as lost


class FailoverUser(HttpUser):
    """An HttpUser that talks to one of LOADTEST_HOSTS and moves to the next when its process is gone."""

    abstract = True

    def pick_host(self, number: int) -> None:
        self.host_index = number
        if HOSTS:
            self.client.base_url = HOSTS[number % len(HOSTS)]

    def fail_over(self) -> None:
        if HOSTS:
            self.pick_host(self.host_index + 1)
        time.sleep(0.25)


class WebchatVisitor(FailoverUser):
    """A website visitor: a few FAQ questions, some resent; every HANDOFF_EVERY-th asks for a person."""

    weight = 10
    wait_time = between(*THINK)

    def on_start(self) -> None:
        self.number = next(_counter)
        self.pick_host(self.number)
        self.done = bool(MAX_VISITORS) and self.number > MAX_VISITORS  # enough conversations started
        self.visitor = secrets.token_urlsafe(24)
        self.headers = {"X-Visitor-Id": self.visitor}
        self.asked = 0
        self.after = 0

    def post(self, text: str, name: str, client_id: str | None = None) -> dict[str, Any] | None:
        """Send one message; after a connection error or a 5xx send it again, same id, to the next process."""
        body = {"text": text, "client_message_id": client_id or secrets.token_hex(8)}
        for attempt in range(ATTEMPTS):
            with self.client.post(
                "/api/v1/webchat/messages",
                json=body,
                headers=self.headers,
                name=name if attempt == 0 else f"{name} (sent again after an error)",
                catch_response=True,
            ) as response:
                if response.status_code == 0 or response.status_code >= 500:
                    response.failure(
                        f"{response.status_code}: {response.text[:200] if response.text else ''}"
                    )
                    self.fail_over()
                    continue
                if response.status_code != 200:
                    response.failure(f"{response.status_code}: {response.text[:200]}")
                    return None
                answer: dict[str, Any] = response.json()
                if not answer["duplicate"] and not answer["replies"] and answer["state"] == "bot":
                    response.failure("no reply from the bot")
                self.after = max(self.after, answer["last_id"])
                return answer
        events.request.fire(
            request_type="POST",
            name="webchat: LOST (no process took it)",
            response_time=0,
            response_length=0,
            exception=RuntimeError(f"{ATTEMPTS} attempts failed"),
            context={},
        )
        return None

    @task
    def converse(self) -> None:
        if self.done:
            return
        if self.asked < MESSAGES:
            self.asked += 1
            client_id = secrets.token_hex(8)
            question = random.choice(QUESTIONS)
            self.post(question, "webchat: question", client_id)
            if random.random() < 0.2:  # a lost answer: the widget resends the same message
                self.post(question, "webchat: resend (same client_message_id)", client_id)
            return
        if self.number % HANDOFF_EVERY == 0 and self.asked == MESSAGES:
            self.asked += 1
            self.post(HUMAN, "webchat: ask for a person")
            return
        if self.asked > MESSAGES and self.number % HANDOFF_EVERY == 0:
            # waiting for, or talking with, a person: read the chat as the widget does without SSE
            response = self.client.get(
                f"/api/v1/webchat/messages?after={self.after}",
                headers=self.headers,
                name="webchat: read the chat",
            )
            if response.status_code == 0 or response.status_code >= 500:
                self.fail_over()
            elif response.status_code == 200:
                chat = response.json()
                self.after = max(self.after, chat["last_id"])
                if chat["state"] in ("resolved", "bot"):
                    self.on_start()  # served: a new visitor takes this one's place
            return
        self.on_start()  # done: a new visitor takes this one's place


class AgentUser(FailoverUser):
    """An agent at the console: online, then reply to and resolve what the queue gives them."""

    abstract = not AGENTS  # no agents to log in as: no agent users
    fixed_count = len(AGENTS)
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        number = next(_agent_numbers)
        self.pick_host(number)
        login, password = AGENTS[number % len(AGENTS)]
        response = self.client.post(
            "/api/v1/auth/login", json={"login": login, "password": password}, name="agent: log in"
        )
        if response.status_code != 200:
            self.stop()
            return
        self.headers = {"Authorization": f"Bearer {response.json()['token']}"}
        self.client.put(
            "/api/v1/agents/me/status",
            json={"status": "online"},
            headers=self.headers,
            name="agent: go online",
        )

    def on_stop(self) -> None:
        if getattr(self, "headers", None):
            self.client.put(
                "/api/v1/agents/me/status",
                json={"status": "offline"},
                headers=self.headers,
                name="agent: go offline",
            )

    @task
    def work_the_queue(self) -> None:
        mine = self.client.get(
            "/api/v1/conversations?mine=true&state=with_agent",
            headers=self.headers,
            name="agent: my conversations",
        )
        if mine.status_code == 0 or mine.status_code >= 500:
            self.fail_over()  # the token is good on every process
            return
        if mine.status_code != 200:
            return
        for conversation in mine.json()[:3]:
            path = f"/api/v1/conversations/{conversation['id']}"
            self.client.get(path, headers=self.headers, name="agent: open a conversation")
            self.client.post(
                f"{path}/messages",
                json={"text": "Hello, I am looking into it right now."},
                headers=self.headers,
                name="agent: reply",
            )
            self.client.post(
                f"{path}/resolve", json={"reason": "load test"}, headers=self.headers, name="agent: resolve"
            )


class TelegramSender(FailoverUser):
    """Telegram delivering customers' messages to the webhook (secret token header)."""

    abstract = not TELEGRAM_SECRET  # the webhook would refuse every update
    weight = 3
    wait_time = between(*THINK)

    def on_start(self) -> None:
        self.pick_host(next(_counter))
        self.user_id = 800_000_000 + random.randrange(100_000_000)

    @task
    def update(self) -> None:
        number = next(_counter)
        update = {
            "update_id": int(time.time() * 1000) % 2_000_000_000 + number,
            "message": {
                "message_id": number,
                "date": int(time.time()),
                "chat": {"id": self.user_id, "type": "private", "first_name": "Load"},
                "from": {"id": self.user_id, "is_bot": False, "first_name": "Load", "language_code": "en"},
                "text": random.choice(QUESTIONS),
            },
        }
        self.client.post(
            "/webhooks/telegram",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
            name="telegram: webhook",
        )


class WhatsAppSender(FailoverUser):
    """Meta delivering customers' messages to the WhatsApp webhook (X-Hub-Signature-256)."""

    abstract = not WHATSAPP_APP_SECRET  # the webhook would refuse every body
    weight = 3
    wait_time = between(*THINK)

    def on_start(self) -> None:
        self.pick_host(next(_counter))
        self.wa_id = f"48{random.randrange(10**8, 10**9)}"

    @task
    def message(self) -> None:
        body = json.dumps(whatsapp_webhook(self.wa_id, random.choice(QUESTIONS))).encode()
        signature = hmac.new(WHATSAPP_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        self.client.post(
            "/webhooks/whatsapp",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"},
            name="whatsapp: webhook",
        )


def whatsapp_webhook(wa_id: str, text: str) -> dict[str, Any]:
    """A Cloud API webhook body carrying one text message, as Meta sends it."""
    message = {
        "from": wa_id,
        "id": f"wamid.load{secrets.token_hex(12)}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "48500000000", "phone_number_id": WHATSAPP_PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Load Test"}, "wa_id": wa_id}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--fail-on-errors", action="store_true", help="Exit 1 when any request failed")


@events.quitting.add_listener
def _exit_code(environment: Any, **_: Any) -> None:
    if environment.parsed_options and environment.parsed_options.fail_on_errors:
        if environment.stats.total.num_failures:
            environment.process_exit_code = 1
