// Calls practice-service over gRPC-Web from the page's own origin (another
// port than the API's), with the service described by the server's own
// descriptor set, and shows what happened.
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const show = (id, text) => {
  document.getElementById(id).textContent = text;
};

// bigint is not JSON: int64 values travel back to the test as strings.
const plain = (value) =>
  JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));

async function main() {
  const params = new URLSearchParams(location.search);
  const api = params.get("api");
  const token = params.get("token");

  const bytes = new Uint8Array(await (await fetch("descriptors.bin")).arrayBuffer());
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  const service = registry.getService("practice.v1.PracticeService");
  const transport = createGrpcWebTransport({ baseUrl: api, useBinaryFormat: true });
  const client = createClient(service, transport);
  const auth = { headers: { authorization: `Bearer ${token}` } };

  const created = await client.createSession(
    { classId: 3n, knowledgeIds: [], title: "from the browser" },
    auth,
  );
  show("created", `session ${created.sessionId} with ${created.models.length} models`);
  const read = await client.getSession({ sessionId: created.sessionId }, auth);

  let badToken = null;
  try {
    await client.createSession({ title: "nope" }, { headers: { authorization: "Bearer not-a-token" } });
  } catch (err) {
    const e = ConnectError.from(err);
    badToken = { code: e.code, name: Code[e.code], message: e.rawMessage };
    show("status", `gRPC status ${e.code} (${Code[e.code]}): ${e.rawMessage}`);
  }

  // The same service over the Connect protocol, on connect-web's defaults
  // (JSON), reads through GET for the RPCs without side effects.
  const connect = createClient(
    service,
    createConnectTransport({ baseUrl: api, useHttpGet: true }),
  );
  const viaConnect = await connect.createSession({ classId: 3n, title: "over Connect" }, auth);
  const readViaConnect = await connect.getSession({ sessionId: viaConnect.sessionId }, auth);
  let connectBadToken = null;
  try {
    await connect.getSession({ sessionId: 1n }, { headers: { authorization: "Bearer not-a-token" } });
  } catch (err) {
    const e = ConnectError.from(err);
    connectBadToken = { code: e.code, name: Code[e.code] };
  }

  // gRPC-Web's JSON payload mode.
  const webJson = createClient(
    service,
    createGrpcWebTransport({ baseUrl: api, useBinaryFormat: false }),
  );
  const viaWebJson = await webJson.createSession({ classId: 3n, title: "gRPC-Web JSON" }, auth);
  const readViaWebJson = await webJson.getSession({ sessionId: viaWebJson.sessionId }, auth);
  let webJsonMissing = null;
  try {
    await webJson.getSession({ sessionId: 999n }, auth);
  } catch (err) {
    const e = ConnectError.from(err);
    webJsonMissing = { code: e.code, name: Code[e.code], message: e.rawMessage };
  }

  // A prompt, streamed over gRPC-Web: each model's text grows on the page
  // as its deltas arrive.
  const chat = document.getElementById("chat");
  const shown = new Map();
  const events = [];
  const finished = {};
  for await (const ev of client.sendPrompt(
    { sessionId: created.sessionId, promptText: "Hello from the browser" },
    auth,
  )) {
    const { case: kind, value } = ev.event;
    events.push({ kind, sessionModelId: String(value.sessionModelId) });
    if (kind === "started") {
      const line = document.createElement("p");
      line.id = `model-${value.sessionModelId}`;
      chat.appendChild(line);
      shown.set(String(value.sessionModelId), line);
    } else if (kind === "delta") {
      shown.get(String(value.sessionModelId)).textContent += value.text;
    } else {
      finished[String(value.sessionModelId)] = { status: value.status, text: value.responseText };
    }
  }
  const onPage = {};
  for (const [id, line] of shown) onPage[id] = line.textContent;

  // Compare: answer the first model's turn again over gRPC-Web, streamed
  // onto the page beside the first attempt, then give it a thumbs up.
  const firstId = Object.keys(finished).sort()[0];
  const firstResponse = events.find((e) => e.kind === "started" && e.sessionModelId === firstId);
  const before = await client.getSession({ sessionId: created.sessionId }, auth);
  const target = before.responses.find((r) => String(r.sessionModelId) === firstId);
  const again = document.createElement("p");
  again.id = "again";
  chat.appendChild(again);
  let regenerated = null;
  for await (const ev of client.regenerateResponse(
    { sessionId: created.sessionId, responseId: target.responseId },
    auth,
  )) {
    const { case: kind, value } = ev.event;
    if (kind === "delta") again.textContent += value.text;
    if (kind === "finished" || kind === "failed") {
      regenerated = {
        attempt: String(value.attempt),
        status: value.status,
        promptId: String(value.promptId),
        firstPromptId: String(target.promptId),
        responseId: String(value.responseId),
        onPage: again.textContent,
        text: value.responseText,
      };
    }
  }
  const rated = await client.rateResponse(
    { sessionId: created.sessionId, responseId: BigInt(regenerated.responseId), rating: "up" },
    auth,
  );

  window.__result = {
    prompt: { events, finished, onPage },
    regenerated,
    rated: { rating: rated.rating, responseId: String(rated.responseId), started: Boolean(firstResponse) },
    created: plain(created),
    read: plain(read),
    same: JSON.stringify(plain(created)) === JSON.stringify(plain(read)),
    badToken,
    grpcWebJson: {
      created: plain(viaWebJson),
      same: JSON.stringify(plain(viaWebJson)) === JSON.stringify(plain(readViaWebJson)),
      missing: webJsonMissing,
    },
    connect: {
      created: plain(viaConnect),
      same: JSON.stringify(plain(viaConnect)) === JSON.stringify(plain(readViaConnect)),
      badToken: connectBadToken,
    },
  };
}

main().catch((err) => {
  show("status", `failed: ${err}`);
  window.__result = { error: String(err) };
});
