"""emrepair.pipelines."""
