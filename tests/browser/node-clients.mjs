// Calls practice-service from Node with every transport of the Connect
// project's own client (@connectrpc/connect-node), the service described by
// the server's descriptor set, and prints what each one saw as JSON.
//
//   node node-clients.mjs <base URL> <token> <descriptor set file>
import { readFileSync } from "node:fs";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const [baseUrl, token, descriptors] = process.argv.slice(2);
const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(descriptors)),
);
const service = registry.getService("practice.v1.PracticeService");
const auth = { headers: { authorization: `Bearer ${token}` } };

const transports = {
  "connect json http/1.1": createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  "connect json http/2": createConnectTransport({ baseUrl, httpVersion: "2" }),
  "connect binary http/1.1": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  "connect get http/1.1": createConnectTransport({ baseUrl, httpVersion: "1.1", useHttpGet: true }),
  "grpc-web binary http/1.1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  "grpc-web binary http/2": createGrpcWebTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  "grpc-web json http/1.1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  "grpc-web json http/2": createGrpcWebTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false }),
  "grpc http/2": createGrpcTransport({ baseUrl }),
};

const failure = (err) => {
  const e = ConnectError.from(err);
  return {
    code: Code[e.code],
    message: e.rawMessage,
    details: e.details.map((d) => ("type" in d ? d.type : d.desc.typeName)),
  };
};

const results = {};
for (const [name, transport] of Object.entries(transports)) {
  const client = createClient(service, transport);
  const result = {};
  try {
    const created = await client.createSession({ title: name }, auth);
    const read = await client.getSession({ sessionId: created.sessionId }, auth);
    result.created = { title: created.title, userId: String(created.userId), models: created.models.length };
    result.same = read.sessionId === created.sessionId && read.title === created.title;
    // A prompt, streamed: the kinds of events in order, and each model's
    // text joined from its deltas against its stored answer.
    const kinds = [];
    const joined = {};
    const stored = {};
    for await (const ev of client.sendPrompt({ sessionId: created.sessionId, promptText: `hi over ${name}` }, auth)) {
      const { case: kind, value } = ev.event;
      kinds.push(kind);
      const id = String(value.sessionModelId);
      if (kind === "delta") joined[id] = (joined[id] ?? "") + value.text;
      if (kind === "finished") stored[id] = value.responseText;
    }
    result.prompt = { kinds, joined, stored };
    const missing = client.sendPrompt({ sessionId: 99999n, promptText: "x" }, auth);
    try {
      for await (const _ of missing) {
      }
      result.promptMissing = { code: "OK" };
    } catch (err) {
      result.promptMissing = failure(err);
    }
  } catch (err) {
    result.error = failure(err);
  }
  for (const [label, call] of [
    ["notFound", () => client.getSession({ sessionId: 99999n }, auth)],
    ["invalid", () => client.createSession({ classId: 0n }, auth)],
    ["unauthenticated", () => client.createSession({ title: "x" }, { headers: { authorization: "Bearer nope" } })],
  ]) {
    try {
      await call();
      result[label] = { code: "OK" };
    } catch (err) {
      result[label] = failure(err);
    }
  }
  results[name] = result;
}
console.log(JSON.stringify(results));
