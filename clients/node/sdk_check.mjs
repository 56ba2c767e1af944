// Drives `rampart demo` with the OpenAI Node SDK, unchanged: chat, a stream, default
// (base64) embeddings and a typed error. Run by crates/rampart/tests/it/demo.rs with
// RAMPART_SECURE (the secure listener) and RAMPART_KEY (the demo's API key) set.
// Prints one `PASS <check>` line per check; the first failure throws (exit code 1).
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.RAMPART_SECURE}/v1`, apiKey: process.env.RAMPART_KEY });
const CHAT = "rampart-demo-chat";

function expect(cond, what) {
  if (!cond) throw new Error(`check failed: ${JSON.stringify(what)}`);
}
const pass = (name) => console.log(`PASS ${name}`);

const r = await client.chat.completions.create({
  model: CHAT,
  messages: [{ role: "user", content: "Hello from Node" }],
});
expect(r.choices[0].message.content === "You said: Hello from Node", r);
pass("node chat");

const stream = await client.chat.completions.create({
  model: CHAT,
  messages: [{ role: "user", content: "Call me at +1 415 555 0134 tomorrow" }],
  stream: true,
});
let text = "";
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
expect(text === "You said: Call me at +1 415 555 0134 tomorrow", text);
pass("node stream (a pseudonymised phone number comes back as sent)");

// The Node SDK asks for base64 by default and decodes it to floats itself.
const dflt = await client.embeddings.create({ model: "rampart-demo-embed", input: "a security gateway for models" });
const floats = await client.embeddings.create({
  model: "rampart-demo-embed",
  input: "a security gateway for models",
  encoding_format: "float",
});
const a = dflt.data[0].embedding;
const b = floats.data[0].embedding;
expect(Array.isArray(a) && a.length === 8, a);
expect(a.every((x, i) => Math.abs(x - b[i]) < 1e-6), { a, b });
expect(Math.abs(Math.hypot(...a) - 1) < 1e-5, a);
pass("node default embeddings decode to the float values");

try {
  await new OpenAI({ baseURL: `${process.env.RAMPART_SECURE}/v1`, apiKey: "rk_live_wrong" }).chat.completions.create({
    model: CHAT,
    messages: [{ role: "user", content: "hi" }],
  });
  throw new Error("a wrong key was accepted");
} catch (e) {
  expect(e instanceof OpenAI.AuthenticationError && e.status === 401, String(e));
}
pass("node AuthenticationError on a wrong key");
console.log("ALL PASSED");
