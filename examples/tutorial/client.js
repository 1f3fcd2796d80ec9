// The tutorial's client, unchanged but for the URL (argv[2], default http://localhost:3000):
// it receives the server's script as a stream and prints it, then stays connected, as the
// tutorial's does (Ctrl-C ends it). Run it here: `npm ci` once, then `node client.js`.
const io = require('socket.io-client')
const ss = require('socket.io-stream')

let socket = io(process.argv[2] || 'http://localhost:3000')
ss(socket).on('script', stream => {
  let buffer = ''
  stream.on('data', data => {
    buffer += data.toString()
  })
  stream.on('end', () => {
    console.log(buffer)
  })
})
