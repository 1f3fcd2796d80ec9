// The tutorial's client, unchanged but for the URL (argv[2], default http://localhost:3000):
// it receives the server's script as a stream and prints it.
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
