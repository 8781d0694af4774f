const fs = require('fs');
const sdk = require(process.env.OPTIMIZELY_SDK || '@optimizely/optimizely-sdk');
const datafile = fs.readFileSync(process.argv[2], 'utf8');
const client = sdk.createInstance({ projectConfigManager: sdk.createStaticProjectConfigManager({ datafile }) });
client.onReady().then(() => { const oc = client.getOptimizelyConfig(); fs.writeSync(1, JSON.stringify(oc)); process.exit(0); });
