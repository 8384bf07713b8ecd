"""The email Batchyard sends when a job finishes: run a small job, compose its email, print it or send it.

Run it:   python examples/job_email.py                   # prints the subject and the text part
          python examples/job_email.py ada@example.com   # sends it through BATCHYARD_SMTP_HOST (docs/email.md)

A job submitted with notify_emails gets this email from the notification outbox, which retries what failed;
this example calls the same two functions directly.
"""

from __future__ import annotations

import sys
from typing import Any

from batchyard import Batchyard, ItemContext, PermanentError
from batchyard.notify import compose_job_email, send_email
from batchyard.wire import JobOut

app = Batchyard()


@app.handler("thumbnail", max_attempts=1)
def thumbnail(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    if item["width"] <= 0:
        raise PermanentError(f"width must be positive, got {item['width']}")
    ctx.add_usage(cost=0.002, pixels=item["width"] ** 2)
    ctx.save_artifact(f"{ctx.key}.txt", f"a {item['width']}px thumbnail")
    return {"width": item["width"]}


if __name__ == "__main__":
    widths = [64, 128, 0, 256, -1, 512]
    job = app.submit(
        "thumbnail",
        [{"custom_id": f"img-{i}", "width": width} for i, width in enumerate(widths)],
        description="March mailing",
    )
    job.wait()
    finished = JobOut.of(app.service.get(job.id)).model_dump(mode="json")
    settings = app.settings
    message = compose_job_email(finished, public_url=settings.public_url, sender=settings.email_from)
    recipients = sys.argv[1:]
    if recipients:
        send_email(message, recipients, settings)
        print(f"sent {message['Subject']!r} to {', '.join(recipients)}")
    else:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        print(f"Subject: {message['Subject']}", "", body.get_content(), sep="\n", end="")
