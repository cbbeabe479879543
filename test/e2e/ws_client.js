// npm `ws` client: prints N stream messages (heartbeats skipped), one per line.
// With a third argument, `on` or `off`, permessage-deflate is offered (ws's
// default offer) or not, and the first line is the negotiated extensions.
const WebSocket = require('ws');
const [url, count, deflate] = process.argv.slice(2);
const want = parseInt(count, 10);
let got = 0;
const ws = new WebSocket(url, { perMessageDeflate: deflate !== 'off' });
const timer = setTimeout(() => { console.error('timeout after ' + got); process.exit(2); }, 20000);
if (deflate) ws.on('open', () => { process.stdout.write(JSON.stringify(ws.extensions) + '\n'); });
ws.on('message', (data, isBinary) => {
  if (got === want) return; // frames already in flight after close(1000)
  if (isBinary) { console.error('binary frame'); process.exit(3); }
  const s = data.toString('utf8');
  if (s.startsWith('{"message_type":"heartbeat"')) return;
  process.stdout.write(s + '\n');
  if (++got === want) { clearTimeout(timer); ws.close(1000); }
});
ws.on('close', (code) => {
  if (got !== want) console.error('closed (' + code + ') after ' + got + ' of ' + want);
  process.exit(got === want ? 0 : 4);
});
ws.on('error', (e) => { console.error(String(e)); process.exit(5); });
