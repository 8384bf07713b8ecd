"""The OpenAI Batch API on your own upstream, with the official SDK (the README's example).

Run ``batchyard mock-upstream --port 8001`` and ``batchyard serve --upstream http://127.0.0.1:8001/v1``, create a key
with ``batchyard keys create --owner you --role member``, then::

    BATCHYARD_API_KEY=by_... python examples/openai_batch.py
"""

from __future__ import annotations

import json
import os
import time

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("BATCHYARD_URL", "http://127.0.0.1:8000") + "/v1", api_key=os.environ["BATCHYARD_API_KEY"]
)

with open("requests.jsonl", "w") as f:
    for i in range(100):
        body = {"model": "mock-chat", "messages": [{"role": "user", "content": f"Say hello to #{i}"}]}
        request = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        f.write(json.dumps(request) + "\n")

with open("requests.jsonl", "rb") as requests:
    file = client.files.create(file=requests, purpose="batch")
batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
print(batch.id, batch.status)
while batch.status not in ("completed", "failed", "expired", "cancelled"):
    time.sleep(1)
    batch = client.batches.retrieve(batch.id)
print(batch.status, batch.request_counts, batch.usage.total_tokens if batch.usage else None)

results = {}
for line in client.files.content(batch.output_file_id or "").text.splitlines():
    answer = json.loads(line)
    results[answer["custom_id"]] = answer["response"]["body"]["choices"][0]["message"]["content"]
print(results["req-7"])
