// Starts the telegram-test-api Bot API emulator for the Go end-to-end tests.
// Usage: node start.js <port>. Prints "READY <port>" once it listens.
'use strict';
const TelegramServer = require('telegram-test-api');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node start.js <port>');
  process.exit(2);
}

// The emulator does not await webhook deliveries, so a webhook answering
// non-2xx becomes an unhandled rejection that would kill Node: log it instead.
process.on('unhandledRejection', (err) => {
  console.error('emulator: unhandled rejection:', err && err.message ? err.message : err);
});

// storeTimeout: keep unread messages for an hour (the default 60 s drops
// them during long tests such as the 1,000-message burst).
const server = new TelegramServer({ port, host: '127.0.0.1', storeTimeout: 3600 });
server.start().then(() => {
  console.log(`READY ${port}`);
}).catch((err) => {
  console.error('emulator: cannot start:', err && err.message ? err.message : err);
  process.exit(1);
});

const stop = () => server.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Exit when the Go test that started us goes away (stdin closes).
process.stdin.on('end', stop);
process.stdin.resume();
