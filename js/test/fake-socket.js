// A socket.io-client socket without a network, for the tests of events and answers across a drop:
// records what is emitted, serves events to the handlers, drops and reconnects (sending afresh).
export function fakeSocket() {
  const handlers = new Map();
  return {
    connected: true,
    active: true,
    io: { on() {}, reconnection: () => true },
    sent: [],
    on(event, fn) {
      handlers.set(event, fn);
      return this;
    },
    once() {},
    off() {},
    emit(...args) {
      this.sent.push(args);
    },
    serve(event, ...args) {
      return handlers.get(event)(...args);
    },
    of(event) {
      return this.sent.filter(([name]) => name === event);
    },
    drop() {
      this.connected = false;
      this.serve('disconnect', 'transport close');
    },
    reconnect() {
      this.connected = true;
      this.sent = [];
      this.serve('connect');
    },
  };
}
