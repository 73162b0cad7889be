package engine

// ConnectWorkers reports how many CONNECT workers are alive (connectpool.go).
func ConnectWorkers(b *Broker) int { return b.connectW.workers() }
