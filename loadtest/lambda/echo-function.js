// A Lambda Invoke API function server: returns {"enriched": <event>}.
const http = require('http');
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    const event = chunks.length ? Buffer.concat(chunks).toString() : '{}';
    const body = '{"enriched":' + event + '}';
    res.writeHead(200, {'Content-Type': 'application/json', 'X-Amz-Executed-Version': '$LATEST', 'Content-Length': Buffer.byteLength(body)});
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(parseInt(process.argv[2] || '9100'), '127.0.0.1');
