// npm `ws` client: prints N stream messages (heartbeats skipped), one per line.
const WebSocket = require('ws');
const [url, count] = process.argv.slice(2);
const want = parseInt(count, 10);
let got = 0;
const ws = new WebSocket(url);
const timer = setTimeout(() => { console.error('timeout after ' + got); process.exit(2); }, 20000);
ws.on('message', (data, isBinary) => {
  if (isBinary) { console.error('binary frame'); process.exit(3); }
  const s = data.toString('utf8');
  if (s.startsWith('{"message_type":"heartbeat"')) return;
  // messages still in flight after our close: not counted, not printed
  if (got >= want) return;
  process.stdout.write(s + '\n');
  if (++got === want) { clearTimeout(timer); ws.close(1000); }
});
ws.on('close', () => process.exit(got === want ? 0 : 4));  // got never exceeds want
ws.on('error', (e) => { console.error(String(e)); process.exit(5); });
