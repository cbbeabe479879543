// npm `eventsource` client: prints "<lastEventId> <data>" for N events.
const EventSource = require('eventsource');
const [url, count] = process.argv.slice(2);
const want = parseInt(count, 10);
let got = 0;
const es = new EventSource(url);
const timer = setTimeout(() => { console.error('timeout after ' + got); process.exit(2); }, 20000);
es.onmessage = (ev) => {
  process.stdout.write(ev.lastEventId + ' ' + ev.data + '\n');
  if (++got === want) { clearTimeout(timer); es.close(); process.exit(0); }
};
es.onerror = (e) => { if (got < want && es.readyState === EventSource.CLOSED) { console.error('error ' + JSON.stringify(e)); process.exit(5); } };
