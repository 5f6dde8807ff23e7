const pm2 = require(process.argv[2]);
pm2.connect(false, (err) => {
  if (err) { console.error(err); process.exit(2); }
  pm2.launchBus((err, bus) => {
    if (err) { console.error(err); process.exit(2); }
    console.log(JSON.stringify({ready: true}));
    bus.on('process:event', (p) => {
      console.log(JSON.stringify({event: p.event, name: p.process.name, pid: p.process.pid}));
    });
  });
});
