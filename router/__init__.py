"""The router Lambda: DynamoDB stream and Batch job events drive each chunk through the pipeline."""
