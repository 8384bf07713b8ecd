"""A batch with its own handler: count the words of each text, with usage totals and an artifact per item.

Run it:   python examples/wordcount.py
Or as a worker for `batchyard submit ... --app examples.wordcount:app --handler wordcount`.
"""

from __future__ import annotations

from batchyard import Batchyard, ItemContext

app = Batchyard()


@app.handler("wordcount", concurrency=4, max_attempts=2)
def wordcount(item: dict[str, str], ctx: ItemContext) -> dict[str, object]:
    words = item["text"].split()
    ctx.add_usage(words=len(words))  # summed on the job
    ctx.save_artifact(f"{ctx.key}.txt", "\n".join(sorted(set(words))))  # lands in artifacts.zip
    return {"words": len(words), "longest": max(words, key=len)}


TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "batches of thousands to millions of items",
    "every item runs with retries and durable state",
]

if __name__ == "__main__":
    job = app.submit(
        "wordcount", [{"custom_id": f"text-{i}", "text": t} for i, t in enumerate(TEXTS)], description="word counts"
    )
    view = job.wait()  # no worker running? the items are processed right here
    print(
        f"{view.job.id}: {view.job.status}, {view.job.succeeded}/{view.job.total} succeeded, "
        f"{view.job.usage['words']:.0f} words"
    )
    for item in job.results():
        print(item.key, item.result)
