// The node's own RPC methods, for polkadot-js: pass `rpc: DLLM_RPC` to ApiPromise.create
// and `api.rpc.dllm.*` works.

export const DLLM_RPC = {
  // polkadot-sdk's own, newer than the definitions @polkadot/api ships.
  author: {
    rotateKeysWithOwner: {
      description:
        'New session keys in the node\'s keystore and the proof that `owner` holds them ({ keys, proof }, hex), for session.setKeys',
      params: [{ name: 'owner', type: 'Bytes' }],
      type: 'Json',
    },
  },
  dllm: {
    quote: {
      description:
        "The least max_fee submit_task accepts now for a prompt given as text, or submit_task_with_generators for `generators` ({ maxFee, redundancy, pricePerTokenLayer, tokens, layers, mode }; amounts as decimal strings)",
      params: [
        { name: 'model', type: 'u32' },
        { name: 'prompt', type: 'Text' },
        { name: 'maxTokens', type: 'u32' },
        { name: 'generators', type: 'u8', isOptional: true },
      ],
      type: 'Json',
    },
    subscribeTask: {
      description:
        "Streams a task's generated tokens as the generator produces them ({ type: 'token', index, token, text }), then one item with the chain's verdict ({ type: 'final', status, fee, refunded, miners, community, output, tokens, promptTokens })",
      params: [{ name: 'task', type: 'u64' }],
      pubsub: ['taskEvent', 'subscribeTask', 'unsubscribeTask'],
      type: 'Json',
    },
  },
};
