import mqtt from 'mqtt';
import { readFileSync as r } from 'node:fs';
const d='/tmp/mx/';
async function probe(name, topic, clientId){
  const opts={ca:r(d+'ca.crt'),reconnectPeriod:0,clientId: clientId ?? name+'-x', connectTimeout:3000};
  if(name){opts.cert=r(d+name+'.crt');opts.key=r(d+name+'.key');}
  try{
    const c=await mqtt.connectAsync('mqtts://127.0.0.1:18883',opts);
    const gr=await c.subscribeAsync(topic,{qos:1});
    const p=await c.publishAsync(topic,'hi',{qos:1}).then(()=> 'puback', e=>'pub-err '+e.message);
    console.log(name,'connected; sub granted',JSON.stringify(gr.map(g=>g.qos)), p);
    await c.endAsync();
  }catch(e){console.log(name,'refused:',e.message)}
}
await probe('dev_1','outpost/v1/devices/dev_1/x');
await probe('dev_1','outpost/v1/devices/dev_2/x');
await probe('dev_2','outpost/v1/devices/dev_2/x');
await probe(undefined,'x');
